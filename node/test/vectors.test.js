'use strict'
// The shared link-operation vectors (tests/vectors/links.json) against the Store API of both
// stores, interpreted as core/tests/behaviour.rs `run_vectors` does.

const assert = require('node:assert/strict')
const fs = require('node:fs')
const { describe, it } = require('node:test')
const { STORES, vectorsPath } = require('./helpers')

const doc = JSON.parse(fs.readFileSync(vectorsPath(), 'utf8'))
// Every step of every case runs: the runner counts them and must count exactly this many.
const STEPS = doc.cases.reduce((n, c) => n + c.steps.length, 0)

function link(l) {
  return l === null
    ? { pod: null }
    : { pod: l.podIndex, persistent: l.persistent, ttl: l.ttlSeconds }
}

async function runStep(store, step) {
  const ns = step.namespace ?? doc.namespace
  const { uid, service, pod, ttl } = step
  const delay = step.delay ?? 0
  switch (step.op) {
    case 'set_link':
      return { previous: await store.setLink(ns, uid, service, pod, ttl) }
    case 'set_link_if_absent':
      return link(await store.setLinkIfAbsent(ns, uid, service, pod, ttl))
    case 'try_set_link':
      return await store.trySetLink(ns, uid, service, pod, ttl)
    case 'remove_link':
      return { removed: await store.removeLink(ns, uid, service, delay) }
    case 'remove_link_if':
      return { removed: await store.removeLinkIf(ns, uid, service, pod, delay) }
    case 'get_link':
      return link(await store.getLink(ns, uid, service))
    case 'get_link_if_persist':
      return { pod: await store.getLinkIfPersist(ns, uid, service) }
    case 'get_link_services':
      return { services: await store.getLinkServices(ns, uid) }
    case 'batch_get_links':
      return { pods: await store.batchGetLinks(ns, step.uids, service) }
    default:
      throw new Error(`unknown op ${step.op}`)
  }
}

function check(got, expect, at) {
  for (const [k, want] of Object.entries(expect)) {
    if (k === 'ttl_min') assert.ok(got.ttl >= want, `${at}: ttl ${got.ttl} < ${want}`)
    else if (k === 'ttl_max') assert.ok(got.ttl <= want, `${at}: ttl ${got.ttl} > ${want}`)
    else assert.deepEqual(got[k], want, `${at}: field ${k} of ${JSON.stringify(got)}`)
  }
}

for (const kind of STORES) {
  describe(`link vectors on the ${kind.name} store`, () => {
    it('runs every step of every case', async () => {
      const { store } = await kind.make()
      let steps = 0
      for (const c of doc.cases) {
        for (const [i, step] of c.steps.entries()) {
          const at = `${c.name} / step ${i} (${step.op})`
          const want = step.expect
          let got
          let err
          try {
            got = await runStep(store, step)
          } catch (e) {
            err = e
          }
          if (want.error) {
            assert.ok(err, `${at}: expected ${want.error}, got ${JSON.stringify(got)}`)
            assert.ok(err instanceof Error, `${at}: not an Error`)
            assert.equal(err.code, want.error, `${at}: ${err.message}`)
          } else {
            if (err) assert.fail(`${at}: unexpected ${err.code}: ${err.message}`)
            check(got, want, at)
          }
          steps++
        }
      }
      assert.equal(steps, STEPS, `${steps} of the ${STEPS} vector steps ran`)
    })
  })
}
