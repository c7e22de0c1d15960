import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { SignJWT } from 'jose'
import { closed, connackCode } from './helpers/clients.ts'
import {
  type ClusterNode,
  clusterSecret,
  startTwoNodeCluster,
  type TwoNodeCluster,
} from './helpers/cluster.ts'
import { Device } from './helpers/device.ts'

const BAD_USERNAME_OR_PASSWORD = 4
/** docs/protocol.md#devices states that a revoked device is cut on every node within this. */
const CUT_WITHIN_MS = 1000

describe('device revocation in a cluster (two nodes on Redis, MongoDB-wire store)', () => {
  let cluster: TwoNodeCluster | undefined
  let a: ClusterNode
  let b: ClusterNode
  const { secret } = clusterSecret()
  const key = new TextEncoder().encode(secret)
  const devices: Device[] = []
  const token = (userId: string, iatSeconds = Math.floor(Date.now() / 1000)) =>
    new SignJWT({})
      .setProtectedHeader({ alg: 'HS256' })
      .setSubject(userId)
      .setIssuedAt(iatSeconds)
      .setExpirationTime(Math.floor(Date.now() / 1000) + 3600)
      .sign(key)

  before(async () => {
    cluster = await startTwoNodeCluster(secret)
    ;({ a, b } = cluster)
  })
  after(async () => {
    for (const d of devices) await d.close().catch(() => {})
    await cluster?.stop()
  })

  it('cuts a device revoked on node A from node B within a second; its old token is refused on both', async (t) => {
    const oldToken = await token('alice')
    const phone = await Device.connect(b.mqttUrl, 'alice', 'phone', oldToken)
    const laptop = await Device.connect(a.mqttUrl, 'alice', 'laptop', oldToken)
    devices.push(phone, laptop)
    const listed = await laptop.request<{ devices: { deviceId: string; connected: boolean }[] }>(
      'devices.list',
    )
    assert.deepEqual(
      listed.devices.map((d) => [d.deviceId, d.connected]),
      [
        ['laptop', true],
        ['phone', true],
      ],
    )
    const phoneClosed = closed(phone.client)
    const started = Date.now()
    const r = await laptop.request<{ revokedAt: number; sessionRemoved: boolean }>('device.revoke', {
      deviceId: 'phone',
    })
    assert.equal(r.sessionRemoved, true)
    await phoneClosed
    const cutAfterMs = Date.now() - started
    t.diagnostic(`revoked on node A, cut on node B after ${cutAfterMs} ms`)
    assert.ok(cutAfterMs < CUT_WITHIN_MS, `cut after ${cutAfterMs} ms`)
    for (const node of [a, b]) {
      assert.equal(
        await connackCode(node.mqttUrl, { clientId: 'alice/phone', password: oldToken, clean: false }),
        BAD_USERNAME_OR_PASSWORD,
        `old token refused on node ${node.id}`,
      )
    }
    const fresh = await token('alice', Math.floor(r.revokedAt / 1000) + 1)
    const back = await Device.connect(b.mqttUrl, 'alice', 'phone', fresh)
    devices.push(back)
    assert.equal(laptop.client.connected, true)
    const now = await back.request<{ devices: { deviceId: string; current: boolean }[] }>('devices.list')
    assert.deepEqual(
      now.devices.map((d) => [d.deviceId, d.current]),
      [
        ['laptop', false],
        ['phone', true],
      ],
    )
  })
})
