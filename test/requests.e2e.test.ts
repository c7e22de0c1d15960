import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import { connect, type NatterRequestError, request } from '../client-sdk/src/index.ts'
import { nextMessage } from './helpers/clients.ts'
import { startTestNode, type TestNode } from './helpers/node.ts'

describe('request/response over MQTT', () => {
  let t: TestNode
  before(async () => {
    t = await startTestNode()
  })
  after(() => t.close())

  it('answers whoami on the device reply topic, through the SDK', async () => {
    const token = await t.token('alice', { expiresInSeconds: 600 })
    const conn = await connect({
      url: t.mqttUrl,
      userId: 'alice',
      deviceId: 'phone',
      token,
      mqtt: { reconnectPeriod: 0 },
    })
    const me = await request<{ userId: string; deviceId: string; tokenExpiresAt: number }>(
      conn.client,
      conn.clientId,
      'whoami',
    )
    assert.equal(me.userId, 'alice')
    assert.equal(me.deviceId, 'phone')
    assert.ok(Number.isInteger(me.tokenExpiresAt), 'ms since the epoch')
    assert.ok(Math.abs(me.tokenExpiresAt - (Date.now() + 600_000)) < 5_000)
    await conn.close()
  })

  it('answers an unknown operation and bad params with error codes, and bad JSON on the error topic', async () => {
    const conn = await connect({
      url: t.wsUrl,
      userId: 'bob',
      deviceId: 'web',
      token: await t.token('bob'),
      mqtt: { reconnectPeriod: 0 },
    })
    await assert.rejects(request(conn.client, conn.clientId, 'nope'), (err: NatterRequestError) => {
      return err.code === 'unknown_operation'
    })
    await assert.rejects(
      request(conn.client, conn.clientId, 'whoami', { extra: 1 }),
      (err: NatterRequestError) => {
        return err.code === 'bad_request' && /extra/.test(err.message)
      },
    )
    for (const [payload, ref] of [
      ['{not json', undefined],
      ['{"params": {}}', undefined],
      ['{"id": "r9", "params": 5}', 'r9'],
    ] as const) {
      const notice = nextMessage(conn.client, 'd/bob/web/err')
      await conn.client.publishAsync('req/whoami', payload, { qos: 1 })
      const body = JSON.parse((await notice).payload.toString())
      assert.equal(body.code, 'bad_request', payload)
      assert.equal(body.topic, 'req/whoami')
      assert.equal(body.ref, ref)
    }
    // Still connected and served.
    assert.equal((await request<{ userId: string }>(conn.client, conn.clientId, 'whoami')).userId, 'bob')
    await conn.close()
  })
})
