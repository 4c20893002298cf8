//! Unit tests of `src/config.rs` (kept out of src/ so that binding-lines counts code only).

use super::*;

fn with_slow_start(v: f64) -> Result<BaseConfig> {
    let mut c = sr_base_config::from(&BaseConfig::default());
    c.slow_start_seconds = v;
    // SAFETY: no placement policy.
    let core = unsafe { c.to_core() }?;
    core.validate()?;
    Ok(core)
}

#[test]
fn slow_start_zero_is_the_default_and_negative_is_off() {
    assert_eq!(
        sr_base_config::from(&BaseConfig::default()).slow_start_seconds,
        0.0
    );
    assert_eq!(with_slow_start(0.0).unwrap().slow_start_seconds, None);
    assert_eq!(with_slow_start(-0.0).unwrap().slow_start_seconds, None);
    assert_eq!(with_slow_start(-1.0).unwrap().slow_start_seconds, Some(0.0));
    assert_eq!(
        with_slow_start(f64::NEG_INFINITY)
            .unwrap()
            .slow_start_seconds,
        Some(0.0)
    );
    assert_eq!(with_slow_start(2.5).unwrap().slow_start_seconds, Some(2.5));
    let off = BaseConfig {
        slow_start_seconds: Some(0.0),
        ..BaseConfig::default()
    };
    assert!(sr_base_config::from(&off).slow_start_seconds < 0.0);
    for bad in [f64::NAN, f64::INFINITY, 86_400.5] {
        let e = with_slow_start(bad).unwrap_err();
        assert_eq!(e.kind(), sr_core::ErrorKind::InvalidConfig);
        assert!(e.to_string().contains("slow_start_seconds"), "{e}");
    }
}

#[test]
fn disable_propagation_false_is_the_default_and_true_turns_it_off() {
    let mut c = std::mem::MaybeUninit::<sr_store_config>::uninit();
    // SAFETY: a valid out pointer.
    assert_eq!(
        unsafe { sr_store_config_default(c.as_mut_ptr()) },
        sr_status::SR_OK
    );
    // SAFETY: filled on SR_OK.
    let mut c = unsafe { c.assume_init() };
    assert!(!c.disable_propagation);
    // SAFETY: a static prefix, no certificate.
    assert!(unsafe { c.to_core() }.unwrap().propagation);
    c.disable_propagation = true;
    // SAFETY: as above.
    assert!(!unsafe { c.to_core() }.unwrap().propagation);
}

#[test]
fn disable_metrics_false_is_the_default_and_true_turns_counting_off() {
    let mut c = std::mem::MaybeUninit::<sr_base_config>::uninit();
    // SAFETY: a valid out pointer.
    assert_eq!(
        unsafe { sr_base_config_default(c.as_mut_ptr()) },
        sr_status::SR_OK
    );
    // SAFETY: filled on SR_OK.
    let mut c = unsafe { c.assume_init() };
    assert!(!c.disable_metrics);
    // SAFETY: a static placement name, no policy.
    assert!(unsafe { c.to_core() }.unwrap().metrics);
    c.disable_metrics = true;
    // SAFETY: as above.
    assert!(!unsafe { c.to_core() }.unwrap().metrics);
    let off = BaseConfig {
        metrics: false,
        ..BaseConfig::default()
    };
    assert!(sr_base_config::from(&off).disable_metrics);
}
