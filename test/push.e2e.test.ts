import assert from 'node:assert/strict'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { clusterSecret } from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'
import { FakeApns, makeCert, type TestCert } from './helpers/fake-push.ts'
import {
  base64,
  commitAdd,
  commitParams,
  createChatGroup,
  encrypt,
  type MlsMember,
  newKeyPackage,
} from './helpers/mls.ts'
import { localNodeEnv, logEvent, type Proc, run } from './helpers/processes.ts'

/**
 * The whole path as a phone sees it: a real node process with APNs configured against a local
 * endpoint that checks requests as Apple does, devices on real MQTT connections.
 */
const ADMIN_KEY = 'push-test-admin-key-0123456789abcdefghijkl'

describe('push notifications end to end (a node process, APNs)', () => {
  const dataDir = mkdtempSync(join(tmpdir(), 'natter-push-e2e-'))
  const { secret, token } = clusterSecret()
  let cert: TestCert
  let apns: FakeApns
  let node: Proc | undefined
  let url = ''
  let httpUrl = ''
  const devices: Device[] = []
  const start = async () => {
    node = run('sh', ['bin/natter', 'start'], {
      ...localNodeEnv(dataDir, secret),
      NATTER_LOG_LEVEL: 'debug',
      // Long enough for a device to reconnect on a loaded test machine.
      NATTER_PUSH_GRACE_MS: '2000',
      NATTER_ADMIN_KEYS: `ops:${ADMIN_KEY}`,
      NATTER_APNS_KEY_FILE: apns.keyFile,
      NATTER_APNS_KEY_ID: apns.keyId,
      NATTER_APNS_TEAM_ID: apns.teamId,
      NATTER_APNS_ADDRESS: `127.0.0.1:${apns.port}`,
      // The local endpoint's certificate, trusted as Apple's is through the system store.
      NODE_EXTRA_CA_CERTS: cert.certFile,
    })
    const { ports } = JSON.parse(await node.waitFor(logEvent('listening'), 120_000))
    url = `mqtt://127.0.0.1:${ports.mqtt}`
    httpUrl = `http://127.0.0.1:${ports.http}`
  }
  const device = async (userId: string) => {
    const d = await Device.connect(url, userId, 'phone', await token(userId), { reconnectPeriod: 0 })
    devices.push(d)
    return d
  }
  const bobsToken = 'b0b5'.repeat(16)
  const pushesSince = (n: number) => apns.received.slice(n)

  before(async () => {
    cert = makeCert()
    apns = await new FakeApns(cert.dir).start(cert)
    await start()
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    await node?.stop()
    await apns?.close()
    cert?.cleanup()
    rmSync(dataDir, { recursive: true, force: true })
  })

  it('sends one collapsed notification with the unread count when Bob’s only device is away; he reconnects to all three messages', async () => {
    const alice = await device('alice')
    let bob = await device('bob')
    const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    await bob.request('push.register', {
      platform: 'apns',
      token: bobsToken,
      apnsTopic: 'com.example.natter',
      sandbox: true,
      locale: 'en-GB',
    })
    await bob.close()
    const before = apns.received.length
    for (const text of ['are you there?', 'the train is late', 'see you at 8']) await alice.send(chat, text)
    await apns.waitFor(before + 1)
    const [push] = pushesSince(before)
    assert.deepEqual(push?.problems, [])
    assert.equal(push?.path, `/3/device/${bobsToken}`)
    assert.equal(push?.headers['apns-topic'], 'com.example.natter')
    assert.equal(push?.headers['apns-collapse-id'], chat)
    const aps = push?.body.aps as { alert: { title: string; body: string }; badge: number }
    assert.deepEqual(aps.alert, { title: 'alice', body: 'see you at 8' })
    assert.equal(aps.badge, 3)

    bob = await device('bob')
    await bob.until(
      () => bob.messages(chat).filter((m) => m.kind === 'text').length >= 3,
      'bob gets the three messages',
    )
    assert.equal(pushesSince(before).length, 1, 'one notification for the burst')
    const metrics = await (await fetch(`${httpUrl}/metrics`)).text()
    assert.match(metrics, /natter_push_sent_total\{provider="apns"\} 1\n/)
  })

  it('says only "New message" for an encrypted chat: no text, no ciphertext (docs/e2ee.md)', async () => {
    const alice = await device('alice')
    let bob = await device('bob')
    const chat = (
      await alice.request<{ id: string }>('chat.create', { name: 'Vault', members: ['bob'], encrypted: true })
    ).id
    const bobKp = await newKeyPackage('bob/phone')
    await bob.request('mls.keypackages.upload', { keyPackages: [bobKp.base64] })
    await bob.request('push.register', {
      platform: 'apns',
      token: bobsToken,
      apnsTopic: 'com.example.natter',
      sandbox: true,
    })
    await bob.close()
    const a: MlsMember = { identity: 'alice/phone', kp: await newKeyPackage('alice/phone') }
    await createChatGroup(chat, a)
    const add = await commitAdd(a, [bobKp.bytes])
    await alice.request('mls.commit', commitParams(chat, add))
    a.state = add.newState
    const before = apns.received.length
    const ciphertext = base64(await encrypt(a, 'the vault code is 4711'))
    await alice.request('send', { chatId: chat, clientMsgId: 'secret-1', ciphertext })
    await apns.waitFor(before + 1)
    const [push] = pushesSince(before)
    assert.deepEqual(push?.problems, [])
    const aps = push?.body.aps as { alert: { title: string; body: string }; badge: number }
    assert.deepEqual(aps.alert, { title: 'Vault', body: 'New message' })
    const wire = JSON.stringify(push?.body)
    assert.ok(!wire.includes('4711') && !wire.includes(ciphertext.slice(0, 40)), wire)
    bob = await device('bob')
    await bob.until(
      () => bob.messages(chat).some((m) => m.clientMsgId === 'secret-1'),
      'bob gets the message',
    )
  })

  it('sends nothing to a device that comes back within the grace period', async () => {
    const alice = await device('alice')
    let bob = await device('bob')
    const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    await bob.close()
    const before = apns.received.length
    const skipped = node?.waitFor(
      (l) => logEvent('push_skipped')(l) && l.includes(`"chatId":"${chat}"`) && l.includes('device_back'),
      20_000,
    )
    await alice.send(chat, 'quick question')
    bob = await device('bob')
    await bob.until(() => bob.messages(chat).some((m) => m.text === 'quick question'), 'bob gets it live')
    await skipped
    assert.equal(apns.received.length, before)
    await bob.close()
  })

  it('sends nothing for a muted chat', async () => {
    const alice = await device('alice')
    let bob = await device('bob')
    const muted = (await alice.request<{ id: string }>('chat.create', { name: 'Noisy', members: ['bob'] })).id
    const direct = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    await bob.request('push.mute', { chatId: muted, muted: true })
    await bob.close()
    const before = apns.received.length
    const queued = (chatId: string) => (l: string) =>
      logEvent('push_queued')(l) && l.includes(`"chatId":"${chatId}"`)
    const directQueued = node?.waitFor(queued(direct), 20_000)
    await alice.send(muted, 'lunch anyone?')
    await alice.send(direct, 'call me')
    await directQueued
    assert.ok(!node?.lines.some(queued(muted)), 'no job for the muted chat')
    // Jobs are sent in the order they became due: had the muted chat made one, it would come first.
    await apns.waitFor(before + 1)
    const got = pushesSince(before)
    assert.deepEqual(
      got.map((p) => p.headers['apns-collapse-id']),
      [direct],
    )
    bob = await device('bob')
    await bob.request('push.mute', { chatId: muted, muted: false })
    await bob.close()
  })

  it('sends nothing to a banned user: a ban keeps content off their devices too', async () => {
    const alice = await device('alice')
    const carol = await device('carol')
    const bob = await device('bob')
    const withCarol = (await alice.request<{ id: string }>('chat.direct', { with: 'carol' })).id
    const withBob = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const carolsToken = 'ca201'.repeat(12).slice(0, 64)
    await carol.request('push.register', {
      platform: 'apns',
      token: carolsToken,
      apnsTopic: 'com.example.natter',
    })
    await carol.close()
    await bob.close()
    const banned = await fetch(`${httpUrl}/admin/v1/users/carol/ban`, {
      method: 'POST',
      headers: { authorization: `Bearer ${ADMIN_KEY}`, 'content-type': 'application/json' },
      body: '{}',
    })
    assert.equal(banned.status, 200)
    const before = apns.received.length
    await alice.send(withCarol, 'are you still there?')
    await alice.send(withBob, 'and you?')
    // Sent in the order they became due: a push to carol would come first.
    await apns.waitFor(before + 1)
    assert.deepEqual(
      pushesSince(before).map((p) => p.path),
      [`/3/device/${bobsToken}`],
    )
    assert.ok(!node?.lines.some((l) => logEvent('push_queued')(l) && l.includes(`"chatId":"${withCarol}"`)))
  })

  it('still pushes once when the node is killed between the job’s creation and its send', async () => {
    const alice = await device('alice')
    const chat = (await alice.request<{ id: string }>('chat.direct', { with: 'bob' })).id
    const before = apns.received.length
    const queued = node?.waitFor(
      (l) =>
        logEvent('push_queued')(l) && l.includes('"seq"') && l.includes(chat) && l.includes('"devices":1'),
      20_000,
    )
    await alice.send(chat, 'are you awake?')
    await queued
    // The push is due two seconds after the message: the node dies before that.
    node?.child.kill('SIGKILL')
    await node?.exited
    assert.equal(apns.received.length, before, 'nothing was sent before the crash')
    await start()
    await apns.waitFor(before + 1)
    const aps = pushesSince(before)[0]?.body.aps as { alert: { body: string } }
    assert.equal(aps.alert.body, 'are you awake?')
    // A graceful stop waits for the worker: whatever it was going to send, it has sent.
    await node?.stop()
    assert.equal(pushesSince(before).length, 1, 'sent once')
  })
})
