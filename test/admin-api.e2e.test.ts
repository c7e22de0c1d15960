import assert from 'node:assert/strict'
import { join } from 'node:path'
import { DatabaseSync } from 'node:sqlite'
import { after, before, describe, it } from 'node:test'
import type { AuditEntry } from '../services/admin/audit-store.ts'
import { connackCode } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { type FerretDb, startFerretDb } from './helpers/ferretdb.ts'
import { rawHttp } from './helpers/http.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const OPS_KEY = 'ops-key-0123456789abcdefghijklmnopqrstuvwxyz'
const AUDITOR_KEY = 'auditor-key-0123456789abcdefghijklmnopqrstuv'

/**
 * The admin API over real HTTP on a real node (docs/admin.md): its own credential, every call in
 * the audit log, and moderation seen by real MQTT devices.
 */
for (const backend of ['SQLite', 'MongoDB (FerretDB)'] as const) {
  describe(`admin API on ${backend}`, () => {
    let t: TestNode
    let ferret: FerretDb | undefined
    let alice: Device
    let bob: Device
    let group: string

    let calls = 0
    const admin = async (
      method: string,
      path: string,
      o: { key?: string | null; body?: unknown; headers?: Record<string, string> } = {},
    ) => {
      calls++
      const headers: Record<string, string> = {}
      const key = o.key === undefined ? OPS_KEY : o.key
      if (key !== null) headers.authorization = `Bearer ${key}`
      if (o.body !== undefined) headers['content-type'] = 'application/json'
      Object.assign(headers, o.headers)
      const res = await fetch(`${t.httpUrl}/admin/v1/${path}`, {
        method,
        headers,
        ...(o.body !== undefined ? { body: JSON.stringify(o.body) } : {}),
      })
      const text = await res.text()
      return {
        status: res.status,
        headers: res.headers,
        body: text ? (JSON.parse(text) as Record<string, unknown>) : {},
      }
    }
    const audit = async (query = '') =>
      (await admin('GET', `audit?limit=1000${query}`, { key: AUDITOR_KEY })).body.entries as AuditEntry[]

    before(async () => {
      const env: Record<string, string> = { NATTER_ADMIN_KEYS: `ops:${OPS_KEY},auditor:${AUDITOR_KEY}` }
      if (backend !== 'SQLite') {
        ferret = await startFerretDb()
        env.NATTER_MONGODB_URI = ferret.uri
      }
      t = await startTestNode(env)
      alice = await Device.connect(t.mqttUrl, 'alice', 'phone', await t.token('alice'))
      bob = await Device.connect(t.mqttUrl, 'bob', 'phone', await t.token('bob'))
      const created = await alice.request<{ id: string }>('chat.create', {
        name: 'Moderated',
        members: ['bob'],
      })
      group = created.id
    })
    after(async () => {
      await alice?.close()
      await bob?.close()
      await t?.close()
      await ferret?.stop()
    })

    it('refuses a call without the admin credential, or with a user token, and writes each refusal', async () => {
      const none = await admin('GET', 'users/alice', { key: null })
      assert.equal(none.status, 401)
      assert.equal((none.body.error as { code: string }).code, 'unauthorized')
      assert.match(none.headers.get('www-authenticate') ?? '', /Bearer realm="natter-admin"/)
      const userToken = await admin('GET', 'users/alice', { key: await t.token('alice') })
      assert.equal(userToken.status, 401, 'a user token is not an admin credential')
      const wrong = await admin('POST', 'users/bob/ban', { key: `${OPS_KEY}x`, body: {} })
      assert.equal(wrong.status, 401)
      const refused = (await audit()).filter((e) => e.result === 'unauthorized')
      assert.deepEqual(
        refused.map((e) => [e.actor, e.action, e.target, e.status]),
        [
          [null, 'user.get', 'user:alice', 401],
          [null, 'user.get', 'user:alice', 401],
          [null, 'user.ban', 'user:bob', 401],
        ],
      )
      assert.ok(refused.every((e) => e.remote !== null && e.at > 0))
    })

    it('answers unknown routes 404 and wrong methods 405 with Allow', async () => {
      assert.equal((await admin('GET', 'nothing/here')).status, 404)
      const wrongMethod = await admin('GET', 'users/alice/ban')
      assert.equal(wrongMethod.status, 405)
      assert.equal(wrongMethod.headers.get('allow'), 'POST')
      const badSeq = await admin('DELETE', `chats/${group}/messages/zero`)
      assert.equal(badSeq.status, 400)
      const badBody = await admin('POST', 'users/bob/ban', { body: { reason: 'x', extra: 1 } })
      assert.equal(badBody.status, 400)
    })

    it('refuses dot-segments, which URL parsing would remove, before any route', async () => {
      const port = Number(new URL(t.httpUrl).port)
      for (const target of ['/v1/../admin/v1/users/bob', '/x/%2e%2E/admin/v1/audit', '/admin/v1/users/.']) {
        const status = await rawHttp(
          port,
          `GET ${target} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer ${OPS_KEY}\r\nConnection: close\r\n\r\n`,
        )
        assert.equal(status, 400, target)
      }
    })

    it('takes the Bearer scheme in any case, and writes only a ban reason it could take', async () => {
      assert.equal(
        (await admin('GET', 'users/alice', { key: null, headers: { authorization: `bearer ${OPS_KEY}` } }))
          .status,
        200,
      )
      const odd = await admin('POST', 'users/mallory/ban', { body: { reason: { nested: 'object' } } })
      assert.equal(odd.status, 400)
      const written = await audit('&target=user%3Amallory')
      assert.deepEqual(
        written.map((e) => [e.result, e.params]),
        [
          ['started', { reason: null }],
          ['bad_request', { reason: null }],
        ],
      )
    })

    it('shows a user: account, profile, devices and chats', async () => {
      const got = await admin('GET', 'users/alice')
      assert.equal(got.status, 200)
      assert.equal(got.body.account, null)
      assert.deepEqual(
        (got.body.devices as { deviceId: string }[]).map((d) => d.deviceId),
        ['phone'],
      )
      assert.deepEqual(
        (got.body.chats as { chatId: string }[]).map((c) => c.chatId),
        [group],
      )
    })

    it('deletes any message: members get the delete event, history shows a tombstone', async () => {
      await bob.send(group, 'a message a moderator removes')
      await alice.until(
        () => alice.messages(group).some((m) => m.text === 'a message a moderator removes'),
        'message',
      )
      const seq = (
        alice.messages(group).find((m) => m.text === 'a message a moderator removes') as { seq: number }
      ).seq
      const deleted = await admin('DELETE', `chats/${group}/messages/${seq}`)
      assert.equal(deleted.status, 200)
      await Device.untilAny(
        [alice, bob],
        () => [alice, bob].every((d) => d.inbox.some((e) => e.type === 'delete' && e.seq === seq)),
        'both members get the delete event',
      )
      const history = await alice.request<{
        messages: { seq: number; deletedAt: number | null; text: string | null }[]
      }>('history', { chatId: group })
      const tomb = history.messages.find((m) => m.seq === seq)
      assert.equal(tomb?.text ?? null, null)
      assert.ok(tomb?.deletedAt)
      const again = await admin('DELETE', `chats/${group}/messages/${seq}`)
      assert.equal(again.status, 404)
      const entries = await audit(`&target=${encodeURIComponent(`chat:${group}/seq:${seq}`)}`)
      assert.deepEqual(
        entries.map((e) => [e.actor, e.action, e.result, e.status]),
        [
          ['ops', 'message.delete', 'started', 0],
          ['ops', 'message.delete', 'ok', 200],
          ['ops', 'message.delete', 'started', 0],
          ['ops', 'message.delete', 'not_found', 404],
        ],
      )
    })

    it('removes a member from a chat: they and the others get the event', async () => {
      const removed = await admin('DELETE', `chats/${group}/members/bob`)
      assert.equal(removed.status, 200)
      await Device.untilAny(
        [alice, bob],
        () =>
          [alice, bob].every((d) =>
            d.inbox.some((e) => e.event?.type === 'member_removed' && e.event.userId === 'bob'),
          ),
        'both hear of the removal',
      )
      const members = (await admin('GET', `chats/${group}`)).body.members as { userId: string }[]
      assert.deepEqual(
        members.map((m) => m.userId),
        ['alice'],
      )
      assert.equal((await admin('DELETE', `chats/${group}/members/bob`)).status, 404)
      // A direct chat's members never change: a ban or an erase is what keeps someone out.
      const direct = await alice.request<{ id: string }>('chat.direct', { with: 'bob' })
      const refused = await admin('DELETE', `chats/${direct.id}/members/bob`)
      assert.equal(refused.status, 403)
      assert.equal((refused.body.error as { code: string }).code, 'not_allowed')
      assert.equal((await admin('DELETE', 'chats/g_nope/members/bob')).status, 404)
    })

    it('bans a user: connection cut, CONNECT and HTTP refused, then unban lets them back', async () => {
      const carol = await Device.connect(t.mqttUrl, 'carol', 'phone', await t.token('carol'))
      const cut = new Promise<void>((resolve) => carol.client.once('close', () => resolve()))
      const banned = await admin('POST', 'users/carol/ban', { body: { reason: 'spam' } })
      assert.equal(banned.status, 200)
      assert.equal((banned.body.account as { status: string }).status, 'banned')
      await cut
      carol.client.end(true)
      const token = await t.token('carol')
      assert.equal(
        await connackCode(t.mqttUrl, { clientId: 'carol/phone', password: token, clean: false }),
        5,
      )
      const http = await fetch(`${t.httpUrl}/v1/whoami`, {
        method: 'POST',
        headers: { authorization: `Bearer ${token}` },
      })
      assert.equal(http.status, 401)
      assert.equal((await admin('GET', 'users/carol')).body.account !== null, true)
      assert.equal((await admin('POST', 'users/carol/unban', { body: {} })).status, 200)
      assert.equal(
        await connackCode(t.mqttUrl, { clientId: 'carol/phone', password: token, clean: false }),
        0,
      )
      assert.equal((await admin('POST', 'users/carol/unban', { body: {} })).status, 404)
      const entries = await audit('&target=user%3Acarol')
      assert.deepEqual(
        entries.map((e) => [e.actor, e.action, e.result]),
        [
          ['ops', 'user.ban', 'started'],
          ['ops', 'user.ban', 'ok'],
          ['ops', 'user.get', 'ok'],
          ['ops', 'user.unban', 'started'],
          ['ops', 'user.unban', 'ok'],
          ['ops', 'user.unban', 'started'],
          ['ops', 'user.unban', 'not_found'],
        ],
      )
      assert.deepEqual(entries[0]?.params, { reason: 'spam' })
      assert.deepEqual(entries[1]?.params, { reason: 'spam' })
    })

    // The lock is SQLite's (another process holding audit.db); the test exists for that store only.
    if (backend === 'SQLite')
      it('does nothing it cannot write down first: a ban refused while the audit log is locked', async () => {
        // Another process holding audit.db's write lock: the node's append waits out its busy
        // timeout (5 s) and fails.
        const locker = new DatabaseSync(join(t.dataDir, 'audit.db'))
        locker.exec('BEGIN IMMEDIATE')
        let refused: Awaited<ReturnType<typeof admin>>
        try {
          refused = await admin('POST', 'users/lockme/ban', { body: { reason: 'while locked' } })
        } finally {
          locker.exec('ROLLBACK')
          locker.close()
        }
        calls-- // its entry could not be written
        assert.equal(refused.status, 500)
        assert.match((refused.body.error as { message: string }).message, /nothing was done/)
        assert.equal((await admin('GET', 'users/lockme')).body.account, null, 'not banned')
      })

    it('writes its own reads: audit.list calls are in the log, paged by id', async () => {
      const page = await admin('GET', 'audit?limit=2', { key: AUDITOR_KEY })
      assert.equal(page.status, 200)
      const entries = page.body.entries as AuditEntry[]
      assert.equal(entries.length, 2)
      assert.equal(page.body.next, entries[1]?.id)
      const reads = await audit('&action=audit.list')
      assert.ok(reads.length >= 2 && reads.every((e) => e.actor === 'auditor'))
      assert.equal((await admin('GET', 'audit?limit=0', { key: AUDITOR_KEY })).status, 400)
      // The last page says so: next is null when nothing follows, even when the page is full
      // (the read that fetched `everything` wrote one more entry after them).
      const everything = await audit()
      const tail = await admin('GET', `audit?after=${(everything.at(-2) as AuditEntry).id}&limit=2`, {
        key: AUDITOR_KEY,
      })
      assert.equal((tail.body.entries as AuditEntry[]).length, 2)
      assert.equal(tail.body.next, null)
    })

    it('has every call of this suite in the log, unknown routes and refusals included', async () => {
      // A call's entry is written once it ran: the reading call is in the next read, not its own.
      const all = await audit()
      const outcomes = all.filter((e) => e.result !== 'started')
      assert.equal(outcomes.length, calls - 1)
      // Each change was written as started before it ran, and its outcome follows.
      for (const [i, e] of all.entries()) {
        if (e.result !== 'started') continue
        const then = all.slice(i + 1).find((o) => o.action === e.action && o.target === e.target)
        assert.ok(then && then.result !== 'started', `an outcome follows ${e.action} ${e.target}`)
      }
      const next = await audit(`&after=${(all.at(-1) as AuditEntry).id}`)
      assert.deepEqual(
        next.map((e) => [e.actor, e.action, e.result]),
        [['auditor', 'audit.list', 'ok']],
      )
      assert.deepEqual(
        all.map((e) => e.id),
        all.map((_, i) => (all[0] as AuditEntry).id + i),
        'ids are dense and ascending',
      )
    })
  })
}

describe('admin API without credentials configured', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode()
  })
  after(() => t?.close())

  it('answers 404 to every admin path', async () => {
    const res = await fetch(`${t.httpUrl}/admin/v1/users/alice`, {
      headers: { authorization: 'Bearer anything-at-all-0123456789abcdefghij' },
    })
    assert.equal(res.status, 404)
  })
})
