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
