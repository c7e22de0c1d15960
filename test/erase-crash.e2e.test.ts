import assert from 'node:assert/strict'
import { randomBytes } from 'node:crypto'
import { mkdtempSync, readdirSync, rmSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import { allClosed, assertErased, type EraseTarget, seedUser } from './helpers/erase-scenario.ts'
import { localNodeEnv, logEvent, type Proc, run } from './helpers/processes.ts'

const files = (dir: string): string[] =>
  readdirSync(dir).flatMap((name) => {
    const path = join(dir, name)
    return statSync(path).isDirectory() ? files(path) : [path]
  })

describe('an erase survives a SIGKILL of its node (embedded default, SQLite)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'natter-erase-crash-'))
  const secret = randomBytes(32).toString('hex')
  const adminKey = randomBytes(24).toString('hex')
  const env = {
    ...localNodeEnv(dataDir, secret),
    NATTER_LOG_LEVEL: 'info',
    // Small batches: the erase of ~300 messages takes dozens of them, so the kill lands mid-way.
    NATTER_ERASE_BATCH: '5',
    NATTER_ADMIN_KEYS: `ops:${adminKey}`,
  }
  const token = (user: string) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(user)
      .setIssuedAt()
      .setExpirationTime('1h')
      .sign(new TextEncoder().encode(secret))
  const start = async (): Promise<{ proc: Proc; target: EraseTarget }> => {
    const proc = run('sh', ['bin/natter', 'start'], env)
    const { ports } = JSON.parse(await proc.waitFor(logEvent('listening'), 120_000))
    return {
      proc,
      target: { mqttUrl: `mqtt://127.0.0.1:${ports.mqtt}`, httpUrl: `http://127.0.0.1:${ports.http}`, token },
    }
  }
  let node: Proc | undefined
  after(async () => {
    await node?.stop()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('is resumed by the restarted node and ends as an uninterrupted erase does', async (t) => {
    const first = await start()
    node = first.proc
    const s = await seedUser(first.target, { perChat: 150 })
    for (const d of [...s.devices, s.veraDevice]) d.client.on('error', () => {})
    const res = await fetch(`${first.target.httpUrl}/admin/v1/users/${s.ursula}/erase`, {
      method: 'POST',
      headers: { authorization: `Bearer ${adminKey}`, 'content-type': 'application/json' },
      body: '{}',
    })
    assert.equal(res.status, 202, await res.text())
    await first.proc.waitFor(logEvent('erase_progress'), 30_000)
    first.proc.child.kill('SIGKILL')
    await first.proc.exited
    assert.ok(!first.proc.lines.some(logEvent('erase_done')), 'killed before the erase finished')
    await allClosed([...s.devices, s.veraDevice])

    const second = await start()
    node = second.proc
    const resumed = JSON.parse(await second.proc.waitFor(logEvent('erase_started'), 30_000)) as {
      userId: string
      step: string
      done: number
    }
    assert.equal(resumed.userId, s.ursula)
    assert.equal(resumed.step, 'messages', 'resumed at the step it was killed in')
    assert.ok(resumed.done > 0 && resumed.done < s.messagesSent, `resumed after ${resumed.done} messages`)
    const done = JSON.parse(await second.proc.waitFor(logEvent('erase_done'), 60_000)) as {
      messages: number
      ms: number
    }
    t.diagnostic(
      `killed after ${resumed.done} messages; the restarted node erased the rest: ${done.messages} in all, ${done.ms} ms`,
    )
    // A batch committed just before the kill, and not yet recorded, is not counted again.
    assert.ok(done.messages > resumed.done, `${done.messages} messages erased in all`)
    await assertErased(second.target, s, { dataDir, objectKeys: async () => files(dataDir) })
  })
})
