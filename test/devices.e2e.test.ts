import assert from 'node:assert/strict'
import { once } from 'node:events'
import { createConnection } from 'node:net'
import { after, before, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import type { MqttClient } from 'mqtt'
import mqttPacket from 'mqtt-packet'
import { createClient, type NatterRequestError } from '../client-sdk/src/index.ts'
import { loadConfig } from '../config/load.ts'
import { closed, connackCode, connectClient } from './helpers/clients.ts'
import { Device } from './helpers/device.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

const NOT_AUTHORIZED = 5
const BAD_USERNAME_OR_PASSWORD = 4

interface DeviceEntry {
  deviceId: string
  firstSeenAt: number
  lastSeenAt: number
  connected: boolean
  current: boolean
  push: string | null
}

describe('devices: list, revoke, log out everywhere else, the cap per user', () => {
  let t: TestNode
  const open: Array<{ end(force?: boolean): unknown }> = []
  /** A token with iat at the given second (now by default) and an optional did claim. */
  const token = (userId: string, o: { iatSeconds?: number; did?: string; noIat?: boolean } = {}) => {
    const jwt = new SignJWT(o.did ? { did: o.did } : {})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userId)
      .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
    if (!o.noIat) jwt.setIssuedAt(o.iatSeconds ?? Math.floor(Date.now() / 1000))
    return jwt.sign(t.secret)
  }
  /** The first second whose tokens are not revoked by a revoke at revokedAt (ms). */
  const secondAfter = (revokedAt: number) => Math.floor(revokedAt / 1000) + 1
  const device = async (userId: string, deviceId: string, tok?: string) => {
    const d = await Device.connect(t.mqttUrl, userId, deviceId, tok ?? (await token(userId)))
    open.push(d.client)
    return d
  }
  const raw = async (userId: string, deviceId: string, tok: string): Promise<MqttClient> => {
    const c = await connectClient(t.mqttUrl, {
      clientId: `${userId}/${deviceId}`,
      password: tok,
      clean: false,
    })
    open.push(c)
    return c
  }
  const code = async (userId: string, deviceId: string, tok: string) =>
    connackCode(t.mqttUrl, { clientId: `${userId}/${deviceId}`, password: tok, clean: false })
  const http = async (userId: string, op: string, params: object, tok?: string) => {
    const res = await fetch(`${t.httpUrl}/v1/${op}`, {
      method: 'POST',
      headers: {
        authorization: `Bearer ${tok ?? (await token(userId))}`,
        'content-type': 'application/json',
      },
      body: JSON.stringify(params),
    })
    return {
      status: res.status,
      body: (await res.json()) as { result?: Record<string, unknown>; error?: { code: string } },
    }
  }
  const list = async (userId: string) =>
    (await http(userId, 'devices.list', {})).body.result as { devices: DeviceEntry[]; max: number }

  before(async () => {
    // The default cap; the test nodes' LOAD_LIMITS raise it for the load tests.
    assert.equal(loadConfig({ env: {} }).settings.maxDevicesPerUser, 10)
    t = await startTestNode({ NATTER_MAX_DEVICES_PER_USER: '10' })
  })
  after(async () => {
    for (const c of open) c.end(true)
    await t?.close()
  })

  it('refuses the 11th device with CONNACK 5, lists 10, and frees a place on revoke', async () => {
    const start = Date.now()
    for (let i = 1; i <= 10; i++) await device('cap', `d${i}`)
    assert.equal(await code('cap', 'd11', await token('cap')), NOT_AUTHORIZED)
    // The SDK says why, since a CONNACK cannot.
    await assert.rejects(
      createClient({ url: t.mqttUrl, userId: 'cap', deviceId: 'd11', getToken: () => token('cap') }),
      (err: NatterRequestError) =>
        err.code === 'connect_failed' &&
        /too many devices, revoke one with devices.list and device.revoke/.test(err.message),
    )
    const { devices, max } = await list('cap')
    assert.equal(max, 10)
    assert.deepEqual(
      devices.map((d) => d.deviceId),
      ['d1', 'd10', 'd2', 'd3', 'd4', 'd5', 'd6', 'd7', 'd8', 'd9'],
    )
    for (const d of devices) {
      assert.equal(d.connected, true)
      assert.equal(d.current, false, 'the HTTP caller is none of them')
      assert.equal(d.push, null)
      assert.ok(d.firstSeenAt >= start && d.firstSeenAt <= d.lastSeenAt && d.lastSeenAt <= Date.now())
    }
    // A device that already has a session reconnects; HTTP calls are not refused by the cap.
    open.at(-1)?.end(true)
    const again = await device('cap', 'd10')
    assert.equal((await again.request<{ devices: DeviceEntry[] }>('devices.list')).devices.length, 10)
    // Revoking one of them frees its place.
    const revoked = (await http('cap', 'device.revoke', { deviceId: 'd3' })).body.result
    assert.equal(revoked?.deviceId, 'd3')
    assert.equal(revoked?.sessionRemoved, true)
    await device('cap', 'd11')
    assert.equal((await list('cap')).devices.length, 10)
    assert.equal(await code('cap', 'd12', await token('cap')), NOT_AUTHORIZED)
  })

  it('frees the place of a device whose session expired', async () => {
    const t2 = await startTestNode({ NATTER_MAX_DEVICES_PER_USER: '2', NATTER_SESSION_EXPIRY_DAYS: '1' })
    try {
      const tok = await new SignJWT({})
        .setProtectedHeader({ alg: 'HS256' })
        .setSubject('exp')
        .setIssuedAt()
        .setExpirationTime('1h')
        .sign(t2.secret)
      const one = await connectClient(t2.mqttUrl, { clientId: 'exp/one', password: tok, clean: false })
      await one.endAsync()
      const two = await connectClient(t2.mqttUrl, { clientId: 'exp/two', password: tok, clean: false })
      const opts = { clientId: 'exp/three', password: tok, clean: false }
      assert.equal(await connackCode(t2.mqttUrl, opts), NOT_AUTHORIZED)
      // Two days on, the disconnected device's session expires; the connected one is kept.
      const removed = await t2.node.inbox.expireSessions(Date.now() + 2 * 86_400_000)
      assert.deepEqual(removed, [{ userId: 'exp', deviceId: 'one' }])
      assert.equal(await connackCode(t2.mqttUrl, opts), 0)
      await two.endAsync()
    } finally {
      await t2.close()
    }
  })

  it('cuts a revoked device, refuses its old token, and accepts one issued after the revoke', async () => {
    const phone = await device('alice', 'phone')
    const laptop = await device('alice', 'laptop')
    await phone.request('push.register', { platform: 'fcm', token: 'fcm-token-of-the-phone' })
    const before = await laptop.request<{ devices: DeviceEntry[] }>('devices.list')
    assert.deepEqual(
      before.devices.map((d) => [d.deviceId, d.current, d.push]),
      [
        ['laptop', true, null],
        ['phone', false, 'fcm'],
      ],
    )
    const oldToken = await token('alice')
    const phoneClosed = closed(phone.client)
    const r = await laptop.request<{
      deviceId: string
      revokedAt: number
      sessionRemoved: boolean
      pushRemoved: boolean
    }>('device.revoke', { deviceId: 'phone' })
    assert.equal(r.sessionRemoved, true)
    assert.equal(r.pushRemoved, true)
    await phoneClosed
    const now = await laptop.request<{ devices: DeviceEntry[] }>('devices.list')
    assert.deepEqual(
      now.devices.map((d) => d.deviceId),
      ['laptop'],
    )
    assert.equal(await code('alice', 'phone', oldToken), BAD_USERNAME_OR_PASSWORD)
    assert.equal(
      await code('alice', 'phone', await token('alice', { noIat: true })),
      BAD_USERNAME_OR_PASSWORD,
    )
    // The revoke's own second counts as before it (iat has whole seconds).
    const sameSecond = await token('alice', { iatSeconds: Math.floor(r.revokedAt / 1000) })
    assert.equal(await code('alice', 'phone', sameSecond), BAD_USERNAME_OR_PASSWORD)
    await raw('alice', 'phone', await token('alice', { iatSeconds: secondAfter(r.revokedAt) }))
    // The old token still connects the other devices: the revoke was of the phone only.
    await raw('alice', 'tablet', oldToken)
  })

  it('lists the asking device as connected and current, even asked in the same write as its CONNECT', async () => {
    // CONNECT, SUBSCRIBE to the reply topic and the request in one TCP write: the request is
    // handled right after the CONNACK, before the session's record may be readable.
    const clientId = 'frank/just-now'
    const socket = createConnection({ host: '127.0.0.1', port: t.node.ports.mqtt })
    open.push({ end: () => socket.destroy() })
    await once(socket, 'connect')
    const bytes = [
      mqttPacket.generate({
        cmd: 'connect',
        protocolId: 'MQTT',
        protocolVersion: 4,
        clean: false,
        clientId,
        keepalive: 30,
        username: 'frank',
        password: Buffer.from(await token('frank')),
      }),
      mqttPacket.generate({
        cmd: 'subscribe',
        messageId: 1,
        subscriptions: [{ topic: `d/${clientId}/res`, qos: 0 }],
      }),
      mqttPacket.generate({
        cmd: 'publish',
        topic: 'req/devices.list',
        payload: JSON.stringify({ id: 'r1', params: {} }),
        qos: 0,
        retain: false,
        dup: false,
      }),
    ]
    const parser = mqttPacket.parser({ protocolVersion: 4 })
    socket.on('data', (d) => parser.parse(d))
    const reply = new Promise<{ result: { devices: DeviceEntry[] } }>((resolve) =>
      parser.on('packet', (p) => {
        if (p.cmd === 'publish' && p.topic === `d/${clientId}/res`) resolve(JSON.parse(String(p.payload)))
      }),
    )
    socket.write(Buffer.concat(bytes))
    const { devices } = (await reply).result
    assert.deepEqual(
      devices.map((d) => [d.deviceId, d.connected, d.current]),
      [['just-now', true, true]],
    )
  })

  it('does not let a user revoke another user’s device', async () => {
    const bobPhone = await device('bob', 'phone')
    const mallory = await device('mallory', 'laptop')
    // device.revoke names a device of the caller only: mallory's revoke is of mallory/phone.
    await mallory.request('device.revoke', { deviceId: 'phone' })
    const stillThere = await bobPhone.request<{ devices: DeviceEntry[] }>('devices.list')
    assert.deepEqual(
      stillThere.devices.map((d) => [d.deviceId, d.connected]),
      [['phone', true]],
    )
    assert.equal(bobPhone.client.connected, true)
    assert.equal(await code('bob', 'phone', await token('bob')), 0)
    // A token bound to one device (did) cannot open another one.
    assert.equal(await code('bob', 'laptop', await token('bob', { did: 'phone' })), NOT_AUTHORIZED)
  })

  it('logs out everywhere else: only the caller’s device is left', async () => {
    const oldToken = await token('carol')
    const phone = await device('carol', 'phone', oldToken)
    const tablet = await device('carol', 'tablet', oldToken)
    const laptop = await device('carol', 'laptop', oldToken)
    const cuts = [closed(phone.client), closed(tablet.client)]
    const r = await laptop.request<{ kept: string; revoked: string[]; revokedAt: number }>('device.revoke', {
      others: true,
    })
    assert.equal(r.kept, 'laptop')
    assert.deepEqual(r.revoked, ['phone', 'tablet'])
    await Promise.all(cuts)
    assert.equal(laptop.client.connected, true)
    const { devices } = await laptop.request<{ devices: DeviceEntry[] }>('devices.list')
    assert.deepEqual(
      devices.map((d) => d.deviceId),
      ['laptop'],
    )
    // Earlier tokens open no device but the caller's, a new device id included, nor HTTP.
    assert.equal(await code('carol', 'phone', oldToken), BAD_USERNAME_OR_PASSWORD)
    assert.equal(await code('carol', 'desk', oldToken), BAD_USERNAME_OR_PASSWORD)
    const refused = await http('carol', 'devices.list', {}, oldToken)
    assert.equal(refused.status, 401)
    assert.equal(refused.body.error?.code, 'unauthorized')
    laptop.client.end(true)
    await raw('carol', 'laptop', oldToken)
    await raw('carol', 'phone', await token('carol', { iatSeconds: secondAfter(r.revokedAt) }))
  })
})
