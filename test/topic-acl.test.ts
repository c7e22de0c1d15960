import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { parseClientId } from '../services/auth/identity.ts'
import { canPublish, canReceive, canSubscribe, chatTopic } from '../services/auth/topic-acl.ts'

const alice = { userId: 'alice', deviceId: 'phone', clientId: 'alice/phone' }

describe('client ids', () => {
  it('are <userId>/<deviceId> with safe characters only', () => {
    assert.deepEqual(parseClientId('alice/phone'), alice)
    assert.deepEqual(parseClientId('a.b@c.d/dev-1'), {
      userId: 'a.b@c.d',
      deviceId: 'dev-1',
      clientId: 'a.b@c.d/dev-1',
    })
    for (const bad of [
      '',
      'alice',
      'alice/',
      '/phone',
      'a/b/c',
      'a+/b',
      'a#/b',
      'a\0/b',
      '$SYS/x',
      'a b/c',
      `${'x'.repeat(65)}/d`,
    ]) {
      assert.equal(parseClientId(bad), null, JSON.stringify(bad))
    }
  })
})

describe('topic rules', () => {
  it("lets a device subscribe to its own topics, and to its user's other devices' replies and notices", () => {
    for (const t of [
      'u/alice/inbox',
      'u/alice/self',
      'd/alice/phone/res',
      'd/alice/phone/err',
      'd/alice/laptop/res',
      'd/alice/sh/err',
    ]) {
      assert.deepEqual(canSubscribe(alice, t), { ok: true }, t)
    }
    const refused: Array<[string, string]> = [
      ['#', 'wildcard_not_allowed'],
      ['u/+/inbox', 'wildcard_not_allowed'],
      ['u/alice/#', 'wildcard_not_allowed'],
      ['$SYS/#', 'system_topic'],
      ['$SYS/broker/clients', 'system_topic'],
      ['$share/g/u/alice/inbox', 'shared_subscription'],
      ['u/bob/inbox', 'foreign_topic'],
      ['d/bob/phone/err', 'foreign_topic'],
      ['d/bob/phone/res', 'foreign_topic'],
      ['d/alicex/phone/res', 'foreign_topic'],
      ['d/alice//res', 'unknown_topic'],
      ['d/alice/a/b/res', 'unknown_topic'],
      ['d/alice/phone/other', 'unknown_topic'],
      ['d/alice/res', 'unknown_topic'],
      ['req/whoami', 'unknown_topic'],
      ['anything', 'unknown_topic'],
    ]
    for (const [t, reason] of refused) assert.deepEqual(canSubscribe(alice, t), { ok: false, reason }, t)
  })

  it('lets a device publish requests and to its user channel, never retained', () => {
    assert.deepEqual(canPublish(alice, 'req/whoami', false), { ok: true })
    assert.deepEqual(canPublish(alice, 'u/alice/self', false), { ok: true })
    assert.deepEqual(canPublish(alice, 'u/alice/self', true), { ok: false, reason: 'retain_not_allowed' })
    assert.deepEqual(canPublish(alice, 'req/whoami', true), { ok: false, reason: 'retain_not_allowed' })
    assert.deepEqual(canPublish(alice, 'u/alice/inbox', false), { ok: false, reason: 'unknown_topic' })
    assert.deepEqual(canPublish(alice, 'u/bob/self', false), { ok: false, reason: 'foreign_topic' })
    assert.deepEqual(canPublish(alice, 'd/alice/phone/res', false), { ok: false, reason: 'unknown_topic' })
    assert.deepEqual(canPublish(alice, '$SYS/x', false), { ok: false, reason: 'system_topic' })
    assert.deepEqual(canPublish(alice, 'req/', false), { ok: false, reason: 'unknown_topic' })
    assert.deepEqual(canPublish(alice, 'req/a/b', false), { ok: false, reason: 'unknown_topic' })
  })

  it('checks again at delivery', () => {
    assert.equal(canReceive(alice, 'u/alice/inbox'), true)
    assert.equal(canReceive(alice, 'u/bob/inbox'), false)
    assert.equal(canReceive(alice, '$natter/dropped'), false)
  })
})

describe('chatTopic', () => {
  it('names the chat of c/<chatId>/<leaf> and nothing else', () => {
    assert.equal(chatTopic('c/abc/send', 'send'), 'abc')
    assert.equal(chatTopic('c/abc/typing', 'typing'), 'abc')
    for (const [topic, leaf] of [
      ['c//send', 'send'],
      ['c/abc/send/x', 'send'],
      ['c/a/b/send', 'send'],
      ['c/abc/typing', 'send'],
      ['d/abc/send', 'send'],
      ['c/abc/xsend', 'send'],
      ['c/abc/', 'send'],
      ['c/abc', 'send'],
    ] as const) {
      assert.equal(chatTopic(topic, leaf), null, topic)
    }
  })
})
