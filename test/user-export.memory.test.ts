import assert from 'node:assert/strict'
import { createHash, randomBytes } from 'node:crypto'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import { after, before, describe, it } from 'node:test'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { DiskObjectStore } from '../services/media/disk-object-store.ts'
import type { MediaRecord } from '../services/media/media-catalog.ts'
import { objectKey } from '../services/media/media-service.ts'
import { SqliteMessageStore } from '../services/messages/sqlite-message-store.ts'
import { exportUser } from '../services/privacy/user-export.ts'

// A full collection before each reading, so that what is measured is what the export holds.
setFlagsFromString('--expose-gc')
const gc = runInNewContext('gc') as () => void

const MESSAGES = 100_000
const MEDIA_BYTES = 64 * 1024 * 1024
const MB = 1024 * 1024

/** Live memory: the JS heap and the Buffers outside it. */
function live(): number {
  gc()
  const m = process.memoryUsage()
  return m.heapUsed + m.arrayBuffers
}

describe('user export memory', () => {
  let dir: string
  let messages: SqliteMessageStore
  let objects: DiskObjectStore
  let media: MediaRecord
  let textBytes = 0

  before(async () => {
    dir = mkdtempSync(join(tmpdir(), 'natter-export-memory-'))
    messages = new SqliteMessageStore(join(dir, 'messages.db'))
    objects = new DiskObjectStore({ dir: join(dir, 'media'), baseUrl: 'http://127.0.0.1:1' })
    const base = 'Ünïcödé and emoji 🙂 so that the text is not plain ASCII, and long enough to weigh: '
    for (let start = 0; start < MESSAGES; start += 2000) {
      const batch: Promise<unknown>[] = []
      for (let i = start; i < start + 2000; i++) {
        const text = `${base}${i} ${randomBytes(48).toString('base64')}`
        textBytes += Buffer.byteLength(text)
        batch.push(
          messages.append({
            chatId: 'big',
            senderId: 'alice',
            deviceId: 'phone',
            clientMsgId: `a${i}`,
            kind: 'text',
            text,
            body: {},
          }),
        )
        // Others' messages between hers: read and skipped by the export.
        if (i % 10 === 0) {
          batch.push(
            messages.append({
              chatId: 'big',
              senderId: 'bob',
              deviceId: 'phone',
              clientMsgId: `b${i}`,
              kind: 'text',
              text: 'bob',
              body: {},
            }),
          )
        }
      }
      await Promise.all(batch)
    }
    const bytes = randomBytes(MEDIA_BYTES)
    await objects.write(objectKey('m_big'), bytes, 'video/mp4')
    media = {
      id: 'm_big',
      uploaderId: 'alice',
      sha256: createHash('sha256').update(bytes).digest('hex'),
      size: MEDIA_BYTES,
      contentType: 'video/mp4',
      kind: 'video',
      name: 'long.mp4',
      status: 'ready',
      createdAt: 1,
      expiresAt: 1,
      readyAt: 1,
      lastSentAt: null,
      width: null,
      height: null,
      durationMs: null,
      hasThumbnail: false,
    }
  })
  after(async () => {
    await messages?.close()
    await objects?.close()
    rmSync(dir, { recursive: true, force: true })
  })

  it(`exports ${MESSAGES} messages and a ${MEDIA_BYTES / MB} MB file without holding them`, async (t) => {
    const baseline = live()
    let peak = 0
    let archive = 0
    // A receiver slower than the disk: the export waits for it rather than buffering.
    const out = new Writable({
      highWaterMark: 64 * 1024,
      write(chunk: Buffer, _enc, done) {
        archive += chunk.length
        setImmediate(done)
      },
    })
    const sampler = setInterval(() => {
      peak = Math.max(peak, live() - baseline)
    }, 250)
    const started = performance.now()
    try {
      const summary = await exportUser(
        'alice',
        {
          accounts: { status: async () => null },
          profiles: { get: async () => [] },
          delivery: { devices: async () => [] },
          push: { registrationsOf: async () => [], mutes: async () => [] },
          blocks: { blockedBy: async () => [] },
          chats: {
            chatsEver: async () => [
              {
                chat: { id: 'big', kind: 'group', name: 'Big', createdBy: 'alice', createdAt: 1 },
                member: { chatId: 'big', userId: 'alice', role: 'admin', joinedAt: 1 },
                cursor: { chatId: 'big', userId: 'alice', deliveredSeq: 0, readSeq: 0 },
              },
            ],
          },
          messages,
          media: { uploadedBy: async () => [media] },
          objects,
        },
        out,
      )
      assert.equal(summary.messages, MESSAGES)
      assert.equal(summary.mediaFiles, 1)
      assert.equal(summary.bytes, archive)
    } finally {
      clearInterval(sampler)
    }
    const seconds = (performance.now() - started) / 1000
    t.diagnostic(
      `export of ${MESSAGES} messages (${(textBytes / MB).toFixed(1)} MB of text) and ${MEDIA_BYTES / MB} MB of media: ` +
        `${(archive / MB).toFixed(1)} MB archive in ${seconds.toFixed(1)} s, peak live memory +${(peak / MB).toFixed(1)} MB`,
    )
    // Typically +3 to +5 MB; the bound leaves room for a collection that lags, and is still far
    // below what holding the messages (15 MB of text, about 50 MB as objects) or the file would take.
    assert.ok(peak < 32 * MB, `peak +${(peak / MB).toFixed(1)} MB`)
  })
})
