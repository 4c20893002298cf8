'use strict'
// The README's JS examples run as printed: each runnable ```js block (on the memory store)
// prints exactly the ```text block that follows it. tests/readme_blocks.py extracts them; they
// `require('stateful-route')` unchanged, so they are written under this directory, from where
// the package installed by node/test.sh resolves.

const assert = require('node:assert/strict')
const { execFileSync, spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')
const { after, describe, it } = require('node:test')

/** The repository's root: the installed package is a link to <root>/node (as in helpers.js). */
const root = path.join(
  fs.realpathSync(path.dirname(require.resolve('stateful-route/package.json'))),
  '..',
)
const dir = fs.mkdtempSync(path.join(__dirname, 'readme-'))
const files = execFileSync('python3', [path.join(root, 'tests', 'readme_blocks.py'), 'js', dir], {
  encoding: 'utf8',
})
  .split('\n')
  .filter(Boolean)

describe('README js blocks', () => {
  after(() => fs.rmSync(dir, { recursive: true, force: true }))

  it('runs every runnable example of the README', () => {
    // Counted independently of the extractor: fences that open a ```js block, not fragments.
    const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8')
    const fences = readme.split('\n').filter((l) => /^ *(`{3,}|~{3,})js\s*$/.test(l))
    assert.ok(fences.length > 0, 'README.md has no runnable ```js block')
    assert.equal(files.length, fences.length, `${files}`)
  })

  for (const file of files) {
    it(`${path.basename(file)} prints the output the README shows`, () => {
      const expected = fs.readFileSync(file.replace(/\.js$/, '.expected'), 'utf8')
      const run = spawnSync(process.execPath, [file], {
        cwd: dir,
        encoding: 'utf8',
        timeout: 60_000,
      })
      assert.equal(run.status, 0, `exit ${run.status} ${run.signal ?? ''}\n${run.stderr}`)
      assert.equal(run.stdout, expected)
    })
  }
})
