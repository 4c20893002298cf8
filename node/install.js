'use strict'
// `npm install` runs this. From a release tarball (tests/dist.sh) that carries a prebuilt addon
// for this platform (npm/<triple>/, see platform.js) it checks that the addon loads and stops:
// no Rust toolchain needed. Otherwise (`npm install <repo>/node`, or a platform with no
// prebuilt addon) it builds the native addon (stateful-route.node) from the Rust sources of the
// same checkout (../bindings/node) with the napi CLI, in release mode, and regenerates
// index.d.ts. It prints which of the two it did. STATEFUL_ROUTE_NODE_FROM_SOURCE=1 forces a
// source build. npm links a local directory instead of copying it and does not
// install a linked package's dependencies, so the napi CLI is installed here first if missing.
// Set STATEFUL_ROUTE_NODE_PROFILE=debug for a faster, unoptimised build.
// STATEFUL_ROUTE_NODE_BENCH=1 (node/bench.sh) builds with the `bench` feature (the measuring
// points of bench.js) and writes its index.d.ts to the temporary directory, so the package's
// index.d.ts always describes the shipped, bench-free addon.

const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const platform = require('./platform.js')

const here = __dirname
const manifest = path.join(here, '..', 'bindings', 'node', 'Cargo.toml')
const triple = platform.triple()

function run(cmd, args) {
  const r = spawnSync(cmd, args, { cwd: here, stdio: 'inherit' })
  if (r.error) throw r.error
  if (r.status !== 0) process.exit(r.status ?? 1)
}

function napiCli() {
  try {
    const pkg = require.resolve('@napi-rs/cli/package.json', { paths: [here] })
    return path.join(path.dirname(pkg), 'dist', 'cli.js')
  } catch {
    return null
  }
}

const prebuilt = platform.prebuiltPath()
if (process.env.STATEFUL_ROUTE_NODE_FROM_SOURCE !== '1' && fs.existsSync(prebuilt)) {
  try {
    require(prebuilt)
    console.log(`stateful-route: using the prebuilt addon for ${triple} (no build)`)
    process.exit(0)
  } catch (err) {
    console.log(`stateful-route: the prebuilt addon for ${triple} does not load: ${err.message}`)
  }
}

if (!fs.existsSync(manifest)) {
  console.error(
    `stateful-route: no prebuilt addon fits ${triple} and ${manifest} is missing. Install from ` +
      'a checkout of the repository (npm install <repo>/node), which builds the addon from its ' +
      'Rust sources.',
  )
  process.exit(1)
}
console.log(`stateful-route: building the addon for ${triple} from source (needs a Rust toolchain)`)

if (!napiCli()) {
  const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm'
  run(npm, ['install', '--omit=dev', '--ignore-scripts', '--no-save', '--no-audit', '--no-fund'])
}

const release = process.env.STATEFUL_ROUTE_NODE_PROFILE !== 'debug'
const bench = process.env.STATEFUL_ROUTE_NODE_BENCH === '1'
const outDir = process.env.STATEFUL_ROUTE_NODE_OUT_DIR || here
const dts = bench
  ? path.join(fs.mkdtempSync(path.join(os.tmpdir(), 'sr-bench-')), 'index.d.ts')
  : ''
run(process.execPath, [
  napiCli(),
  'build',
  ...(release ? ['--release'] : []),
  '--manifest-path',
  manifest,
  '--package-json-path',
  path.join(here, 'package.json'),
  ...(bench ? ['--features', 'bench'] : []),
  '--output-dir',
  outDir,
  '--dts',
  bench ? path.relative(outDir, dts) : 'index.d.ts',
  // The hand-written declarations of index.js's JS-side helpers head the generated file.
  '--dts-header',
  fs.readFileSync(path.join(here, 'js-helpers.d.ts'), 'utf8'),
  '--no-const-enum',
  '--runtime-string-enum',
])
if (bench) fs.rmSync(path.dirname(dts), { recursive: true, force: true })
