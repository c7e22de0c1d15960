import assert from 'node:assert/strict'
import { EventEmitter, once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, beforeEach, describe, it } from 'node:test'
import pino from 'pino'
import { SqliteChatStore } from '../services/chats/sqlite-chat-store.ts'
import type { StoredMessage } from '../services/messages/message-store.ts'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'
import type { PushTelemetry } from '../services/metrics/push-metrics.ts'
import { ApnsProvider } from '../services/push/apns-provider.ts'
import { LocalDeviceLiveness } from '../services/push/device-liveness.ts'
import { FcmProvider } from '../services/push/fcm-provider.ts'
import { LogPushProvider, type PushProvider } from '../services/push/push-provider.ts'
import { PushService } from '../services/push/push-service.ts'
import type { Registration } from '../services/push/push-store.ts'
import { SqlitePushStore } from '../services/push/sqlite-push-store.ts'
import { MAX_PAGE_SIZE, operations } from '../services/requests/operations.ts'
import { FakeApns, FakeFcm, fcmError, makeCert, type Reply, type TestCert } from './helpers/fake-push.ts'

const RETRY_BASE_MS = 200

/** Telemetry that tells the test what happened, as it happens. */
class Recorder extends EventEmitter implements PushTelemetry {
  readonly counts: Record<string, number> = {}
  #count(what: string) {
    this.counts[what] = (this.counts[what] ?? 0) + 1
    this.emit(what)
  }
  sent = () => this.#count('sent')
  failed = () => this.#count('failed')
  retried = () => this.#count('retried')
  tokenRemoved = () => this.#count('tokenRemoved')
  inDoubt = () => this.#count('inDoubt')
  skipped = () => this.#count('skipped')
}

interface Setup {
  name: 'fcm' | 'apns'
  fake: FakeApns | FakeFcm
  provider: PushProvider
  registration: Omit<Registration, 'userId' | 'deviceId' | 'updatedAt'>
  /** What the provider says of a dead token, two ways. */
  deadToken: [Reply, Reply]
  /** The text, badge and collapse key of a received request. */
  read(
    body: Record<string, unknown>,
    headers: Record<string, unknown>,
  ): { text: string; badge: number; collapse: string }
}

async function setUp(name: 'fcm' | 'apns', cert: TestCert): Promise<Setup> {
  if (name === 'apns') {
    const fake = await new FakeApns(cert.dir).start(cert)
    return {
      name,
      fake,
      provider: new ApnsProvider({
        key: fake.keyFile,
        keyId: fake.keyId,
        teamId: fake.teamId,
        address: `127.0.0.1:${fake.port}`,
        ca: [cert.cert],
      }),
      registration: {
        platform: 'apns',
        token: 'a1b2'.repeat(16),
        apnsTopic: 'com.example.chat',
        sandbox: true,
        locale: 'en',
        hideText: false,
      },
      deadToken: [
        { status: 410, body: { reason: 'Unregistered', timestamp: Date.now() } },
        { status: 400, body: { reason: 'BadDeviceToken' } },
      ],
      read: (body, headers) => {
        const aps = body.aps as { alert: { body: string }; badge: number }
        return { text: aps.alert.body, badge: aps.badge, collapse: String(headers['apns-collapse-id']) }
      },
    }
  }
  const fake = await new FakeFcm(cert.dir).start(cert)
  return {
    name,
    fake,
    provider: new FcmProvider({ credentialsFile: fake.credentialsFile, agent: fake.agent(cert) }),
    registration: {
      platform: 'fcm',
      token: 'fcm-token-of-bobs-phone',
      apnsTopic: null,
      sandbox: false,
      locale: 'en',
      hideText: false,
    },
    deadToken: [
      fcmError(404, 'NOT_FOUND', 'UNREGISTERED'),
      fcmError(400, 'INVALID_ARGUMENT', 'INVALID_ARGUMENT'),
    ],
    read: (body) => {
      const m = body.message as {
        notification: { body: string }
        android: { collapse_key: string; notification: { tag: string; notification_count: number } }
      }
      assert.equal(m.android.notification.tag, m.android.collapse_key, 'one visible notification per chat')
      return {
        text: m.notification.body,
        badge: m.android.notification.notification_count,
        collapse: m.android.collapse_key,
      }
    },
  }
}

for (const name of ['fcm', 'apns'] as const) {
  describe(`push through ${name === 'fcm' ? 'FCM (firebase-admin)' : 'APNs (@parse/node-apn)'} to a local endpoint`, () => {
    let cert: TestCert
    let s: Setup
    let dir: string
    let chats: SqliteChatStore
    let messages: SqliteMessageStore
    let store: SqlitePushStore
    let telemetry: Recorder
    let service: PushService
    let n = 0
    const log = pino({ level: process.env.NATTER_TEST_LOG_LEVEL ?? 'silent' })

    before(async () => {
      cert = makeCert()
      s = await setUp(name, cert)
      dir = mkdtempSync(join(tmpdir(), 'natter-push-svc-'))
      chats = new SqliteChatStore(join(dir, 'chats.db'))
      messages = new SqliteMessageStore(join(dir, 'messages.db'))
      store = new SqlitePushStore(join(dir, 'push.db'))
    })
    after(async () => {
      await service?.stop()
      await s.provider.close()
      await s.fake.close()
      await Promise.all([chats.close(), messages.close(), store.close()])
      rmSync(dir, { recursive: true, force: true })
      cert.cleanup()
    })
    let chatId: string
    beforeEach(async () => {
      await service?.stop()
      telemetry = new Recorder()
      chatId = `d${++n}`
      await chats.createGroup({
        id: chatId,
        name: `Trip ${n}`,
        createdBy: 'alice',
        members: ['bob'],
        at: Date.now(),
      })
      await store.register({ ...s.registration, userId: 'bob', deviceId: 'phone', updatedAt: Date.now() })
      service = new PushService({
        store,
        chats,
        messages,
        liveness: new LocalDeviceLiveness(),
        providers: { fcm: s.provider, apns: s.provider },
        members: () => ['alice', 'bob'],
        options: { graceMs: 150, retryBaseMs: RETRY_BASE_MS, workerId: 'test' },
        ops: operations({ maxGroupMembers: 10, maxPageSize: MAX_PAGE_SIZE }),
        log,
        telemetry,
      })
      service.start()
    })
    const send = async (text: string): Promise<StoredMessage> => {
      const { message } = await messages.append({
        chatId,
        senderId: 'alice',
        deviceId: 'phone',
        clientMsgId: `${chatId}-${text}`,
        kind: 'text',
        text,
        body: {},
      })
      await service.onMessage(message)
      return message
    }

    it('sends one notification for a burst, with the newest text and the unread count', async () => {
      const before = s.fake.received.length
      for (const text of ['one', 'two', 'three']) await send(text)
      await once(telemetry, 'sent')
      const got = s.fake.received.slice(before)
      assert.equal(got.length, 1)
      assert.deepEqual(got[0]?.problems, [], 'the endpoint accepted the request as the provider would')
      const seen = s.read(got[0]?.body ?? {}, got[0]?.headers ?? {})
      assert.equal(seen.text, 'alice: three')
      assert.equal(seen.badge, 3)
      assert.equal(seen.collapse, chatId)
      assert.equal((await store.job('bob', 'phone', chatId))?.state, 'idle')
      // The same message again (a retried send) is not notified again.
      const [last] = await messages.before(chatId, null, 1)
      await service.onMessage(last as StoredMessage)
      assert.equal((await store.job('bob', 'phone', chatId))?.state, 'idle')
    })

    it('retries 429 (after Retry-After where the provider gives it) and 500 with backoff, then sends once', async () => {
      s.fake.script(
        {
          status: 429,
          headers: { 'retry-after': '1' },
          body:
            name === 'apns'
              ? { reason: 'TooManyRequests' }
              : fcmError(429, 'RESOURCE_EXHAUSTED', 'QUOTA_EXCEEDED').body,
        },
        {
          status: 500,
          body:
            name === 'apns' ? { reason: 'InternalServerError' } : fcmError(500, 'INTERNAL', 'INTERNAL').body,
        },
      )
      const before = s.fake.received.length
      await send('hello?')
      await once(telemetry, 'sent')
      const got = s.fake.received.slice(before)
      assert.equal(got.length, 3, 'two failures, one success')
      assert.equal(telemetry.counts.retried, 2)
      assert.equal(telemetry.counts.sent, 1)
      const [first, second, third] = got.map((r) => r.at) as [number, number, number]
      // FCM's Retry-After is honoured; node-apn does not pass it on, so APNs backs off from the base.
      assert.ok(
        second - first >= (name === 'fcm' ? 1000 : RETRY_BASE_MS / 2),
        `first retry after ${second - first} ms`,
      )
      assert.ok(third - second >= RETRY_BASE_MS, `second retry after ${third - second} ms (doubled)`)
    })

    for (const [i, what] of ['unregistered', 'invalid'].entries()) {
      it(`removes an ${what} token and sends nothing more to it`, async () => {
        s.fake.script(s.deadToken[i] as Reply)
        const before = s.fake.received.length
        await send(`to a dead token ${i}`)
        await once(telemetry, 'tokenRemoved')
        assert.equal(await store.registration('bob', 'phone'), null)
        assert.equal(await store.job('bob', 'phone', chatId), null)
        await send('after removal')
        assert.equal(await store.job('bob', 'phone', chatId), null, 'no job for a device without a token')
        assert.equal(s.fake.received.length, before + 1)
      })
    }
  })
}

describe('push with no provider configured', () => {
  it('writes the notification to the log', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'natter-push-log-'))
    const lines: Record<string, unknown>[] = []
    const log = pino({ level: 'info' }, { write: (l: string) => void lines.push(JSON.parse(l)) })
    const chats = new SqliteChatStore(join(dir, 'chats.db'))
    const messages = new SqliteMessageStore(join(dir, 'messages.db'))
    const store = new SqlitePushStore(join(dir, 'push.db'))
    const telemetry = new Recorder()
    const provider = new LogPushProvider(log, 'fcm')
    const service = new PushService({
      store,
      chats,
      messages,
      liveness: new LocalDeviceLiveness(),
      providers: { fcm: provider, apns: provider },
      members: () => ['alice', 'bob'],
      options: { graceMs: 0, workerId: 'test' },
      ops: operations({ maxGroupMembers: 10, maxPageSize: MAX_PAGE_SIZE }),
      log,
      telemetry,
    })
    try {
      await chats.findOrCreateDirect({ id: 'd1', a: 'alice', b: 'bob', at: Date.now() })
      await store.register({
        userId: 'bob',
        deviceId: 'phone',
        platform: 'fcm',
        token: 'token-of-bob',
        apnsTopic: null,
        sandbox: false,
        locale: 'de-DE',
        hideText: true,
        updatedAt: Date.now(),
      })
      service.start()
      const { message } = await messages.append({
        chatId: 'd1',
        senderId: 'alice',
        deviceId: 'phone',
        clientMsgId: 'x1',
        kind: 'text',
        text: 'a secret',
        body: {},
      })
      await service.onMessage(message)
      await once(telemetry, 'sent')
      const line = lines.find((l) => l.event === 'push' && l.provider === 'log')
      assert.equal(line?.title, 'alice')
      assert.equal(line?.bodyChars, 'Neue Nachricht'.length, 'hidden text, in the device’s language')
      assert.equal(line?.body, undefined, 'the log never carries a body’s text')
      assert.ok(!JSON.stringify(lines).includes('a secret'))
    } finally {
      await service.stop()
      await Promise.all([chats.close(), messages.close(), store.close()])
      rmSync(dir, { recursive: true, force: true })
    }
  })
})
