'use strict'
// Which prebuilt addon fits this machine, in napi-rs's platform-package naming: the triple
// (`linux-x64-gnu`, `darwin-arm64`, ...) and the file `npm/<triple>/stateful-route.<triple>.node`
// that a release tarball carries (tests/dist.sh). install.js and index.js both ask here, so the
// install-time choice and the load-time choice cannot differ.

const path = require('node:path')

function libc() {
  if (process.platform !== 'linux') return ''
  const report = process.report && process.report.getReport()
  const glibc = report && report.header && report.header.glibcVersionRuntime
  return glibc ? '-gnu' : '-musl'
}

/** `<platform>-<arch>[-gnu|-musl]`, as napi-rs names its platform packages. */
function triple() {
  return `${process.platform}-${process.arch}${libc()}`
}

/** The prebuilt addon's path for this machine (it may not exist). */
function prebuiltPath() {
  const t = triple()
  return path.join(__dirname, 'npm', t, `stateful-route.${t}.node`)
}

/** The addon built from source by install.js in a checkout. */
const sourceBuildPath = path.join(__dirname, 'stateful-route.node')

module.exports = { triple, prebuiltPath, sourceBuildPath }
