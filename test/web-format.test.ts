import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import type { ChatMessage } from '../client-sdk/src/index.ts'
import type { EncryptedMedia } from '../client-sdk/src/mls/encrypted-media.ts'
import { departureOf, previewOf } from '../web/format.ts'

/**
 * The web chat's words for a chat list preview and a removed member's page (web/format.ts), for
 * the cases the browser tests do not reach: videos, audio, several photos, mixed files, leaving.
 */

let seq = 0
function msg(over: Partial<ChatMessage>): ChatMessage {
  seq++
  return {
    type: 'message',
    chatId: 'e_g.1',
    seq,
    clientMsgId: `m${seq}`,
    senderId: 'alice',
    deviceId: 'phone',
    at: 0,
    kind: 'text',
    text: null,
    editedAt: null,
    deletedAt: null,
    ...over,
  }
}

function files(...kinds: EncryptedMedia['kind'][]): Partial<ChatMessage> {
  return {
    media: kinds.map((_, i) => `md${i}`),
    encryptedMedia: kinds.map((kind, i) => ({ id: `md${i}`, kind }) as EncryptedMedia),
  }
}

const nameOf = (u: string) => u

describe('previewOf for an encrypted chat’s media', () => {
  it('names photos, a video and audio by their kind', () => {
    assert.equal(previewOf(msg(files('image')), nameOf), 'Photo')
    assert.equal(previewOf(msg(files('image', 'image', 'image')), nameOf), '3 photos')
    assert.equal(previewOf(msg(files('video')), nameOf), 'Video')
    assert.equal(previewOf(msg(files('audio')), nameOf), 'Audio')
  })

  it('says attachments for a file, mixed kinds, and a plaintext message’s media ids', () => {
    assert.equal(previewOf(msg(files('file')), nameOf), 'Attachment')
    assert.equal(previewOf(msg(files('image', 'file')), nameOf), '2 attachments')
    assert.equal(previewOf(msg({ chatId: 'g.1', media: ['md0'] }), nameOf), 'Attachment')
    assert.equal(previewOf(msg({ text: 'look', ...files('image') }), nameOf), 'look')
  })
})

describe('departureOf', () => {
  const event = (type: string, userId: string, senderId: string) =>
    msg({ kind: 'event', senderId, event: { type, userId } })

  it('finds who removed the user, from the last event naming them', () => {
    const timeline = [
      event('member_removed', 'carol', 'bob'),
      event('members_added', 'carol', 'alice'),
      msg({ text: 'welcome back' }),
      event('member_removed', 'dave', 'alice'),
      event('member_removed', 'carol', 'alice'),
    ]
    assert.deepEqual(departureOf(timeline, 'carol'), { left: false, by: 'alice' })
  })

  it('tells leaving apart, and gives null when the timeline holds no such event', () => {
    assert.deepEqual(departureOf([event('member_left', 'carol', 'carol')], 'carol'), {
      left: true,
      by: 'carol',
    })
    assert.equal(departureOf([msg({ text: 'hi' }), event('member_removed', 'dave', 'alice')], 'carol'), null)
    assert.equal(departureOf([], 'carol'), null)
  })
})
