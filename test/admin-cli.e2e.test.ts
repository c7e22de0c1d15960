import assert from 'node:assert/strict'
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { connackCode } from './helpers/clients.ts'
import { logEvent, type Proc, run, runToEnd } from './helpers/processes.ts'

const OPS_KEY = 'cli-ops-key-0123456789abcdefghijklmnopqrstuvw'

/** `natter admin …` as an operator on the machine runs it, against a node started by `natter start`. */
describe('natter admin, run against a node', () => {
  let dir: string
  let env: Record<string, string>
  let node: Proc
  let ports: { mqtt: number; ws: number; http: number }

  const natter = (args: string[], extra: Record<string, string> = {}) =>
    runToEnd('sh', ['bin/natter', ...args], { ...env, ...extra })
  const admin = async (args: string[], extra: Record<string, string> = {}) => {
    const r = await natter(['admin', ...args, '--url', `http://127.0.0.1:${ports.http}`], extra)
    return { ...r, json: r.code === 0 && r.stdout.startsWith('{') ? JSON.parse(r.stdout) : null }
  }

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'natter-admin-cli-'))
    env = {
      NATTER_HOST: '127.0.0.1',
      NATTER_MQTT_PORT: '0',
      NATTER_WS_PORT: '0',
      NATTER_HTTP_PORT: '0',
      NATTER_DATA_DIR: join(dir, 'data'),
      NATTER_ADMIN_KEYS: `ops:${OPS_KEY}`,
    }
    node = run('sh', ['bin/natter', 'start'], env)
    ports = JSON.parse(await node.waitFor(logEvent('listening'), 120_000)).ports
  })
  after(async () => {
    await node?.stop()
    rmSync(dir, { recursive: true, force: true })
  })

  it('bans and unbans with the key of NATTER_ADMIN_KEYS, and the audit log shows who did it', async () => {
    const token = (await natter(['token', 'mallory'])).stdout.trim()
    const banned = await admin(['ban', 'mallory', '--reason', 'spam'])
    assert.equal(banned.code, 0, banned.stderr)
    assert.equal(banned.json.account.status, 'banned')
    assert.equal(
      await connackCode(`mqtt://127.0.0.1:${ports.mqtt}`, { clientId: 'mallory/cli', password: token }),
      5,
    )
    const unbanned = await admin(['unban', 'mallory'])
    assert.equal(unbanned.code, 0, unbanned.stderr)
    const log = await admin(['audit', '--target', 'user:mallory'])
    assert.deepEqual(
      log.json.entries.map((e: { actor: string; action: string; result: string }) => [
        e.actor,
        e.action,
        e.result,
      ]),
      [
        ['ops', 'user.ban', 'started'],
        ['ops', 'user.ban', 'ok'],
        ['ops', 'user.unban', 'started'],
        ['ops', 'user.unban', 'ok'],
      ],
    )
  })

  it('writes an export to a file', async () => {
    const file = join(dir, 'alice.zip')
    const r = await admin(['export', 'alice', '-o', file])
    assert.equal(r.code, 0, r.stderr)
    assert.deepEqual(r.json, { file })
    assert.equal(readFileSync(file).subarray(0, 2).toString('latin1'), 'PK', 'a zip archive')
    assert.equal(statSync(file).mode & 0o777, 0o600, 'readable by its owner only')
  })

  it('erases a user and waits until it is done', async () => {
    const r = await admin(['erase', 'dave', '--wait'])
    assert.equal(r.code, 0, r.stderr)
    assert.equal(r.json.account.status, 'erased')
  })

  it('says what went wrong: a refused call exits 1, a bad command line or no key exits 2', async () => {
    const wrongKey = await admin(['user', 'alice'], { NATTER_ADMIN_KEY: `${OPS_KEY}-wrong` })
    assert.equal(wrongKey.code, 1)
    assert.match(wrongKey.stderr, /natter: unauthorized: /)
    const notFound = await admin(['delete-message', 'g_missing', '3'])
    assert.equal(notFound.code, 1)
    assert.match(notFound.stderr, /natter: not_found: no chat g_missing/)
    const usage = await admin(['ban'])
    assert.equal(usage.code, 2)
    assert.match(usage.stderr, /usage: natter admin ban USER/)
    const noKey = await admin(['user', 'alice'], { NATTER_ADMIN_KEYS: '' })
    assert.equal(noKey.code, 2)
    assert.match(noKey.stderr, /no admin key/)
  })
})
