import assert from 'node:assert/strict'
import { appendFileSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, describe, it } from 'node:test'
import { type ChatMessage, MemoryMlsStorage } from '../client-sdk/src/index.ts'
import { decrypt, encrypt, epochOf, utf8Decoder, utf8Encoder } from '../client-sdk/src/mls/codec.ts'
import { FileMlsStorage } from '../client-sdk/src/mls/file-storage.ts'
import { MlsDevice } from '../client-sdk/src/mls/mls-device.ts'

describe('MLS key storage on the device', () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-mls-storage-'))
  after(() => rmSync(dir, { recursive: true, force: true }))

  it('FileMlsStorage: none before the first save, then the record, 0600, written by rename', async () => {
    const storage = new FileMlsStorage(join(dir, 'keys'), 'ann', 'phone/1')
    assert.equal(await storage.load(), null)
    const device = await MlsDevice.open(storage, 'ann/phone/1')
    const saved = await storage.load()
    assert.equal(saved?.identity, 'ann/phone/1')
    assert.equal(statSync(storage.path).mode & 0o777, 0o600)
    // Many saves at once: one after another, the last one read back, no temporary file left.
    await Promise.all(Array.from({ length: 20 }, (_, i) => device.newKeyPackages(1, i === 19)))
    const record = await storage.load()
    assert.equal(Object.keys(record?.keyPackages ?? {}).length, 21)
    assert.equal(Object.values(record?.keyPackages ?? {}).filter((k) => k.lastResort).length, 1)
    assert.deepEqual(readdirSync(join(dir, 'keys')), ['ann~phone%2F1.mls.json'])
  })

  it('FileMlsStorage: a file that is no record rejects, and is not overwritten by open', async () => {
    const storage = new FileMlsStorage(dir, 'bad', 'x')
    writeFileSync(storage.path, '{"version":2}')
    await assert.rejects(storage.load(), /not an MLS device record of version 1/)
    await assert.rejects(MlsDevice.open(storage, 'bad/x'))
  })

  it('FileMlsStorage: messages read, one line each, the latest of a seq wins, a torn line skipped', async () => {
    const storage = new FileMlsStorage(dir, 'dee', 'phone')
    assert.deepEqual(await storage.loadMessages('e_1'), [])
    const m = (seq: number, text: string | null) =>
      ({ chatId: 'e_1', seq, text, deletedAt: text === null ? 1 : null }) as unknown as ChatMessage
    await Promise.all([storage.saveMessage(m(1, 'one')), storage.saveMessage(m(2, 'two'))])
    await storage.saveMessage(m(2, null))
    appendFileSync(join(storage.messagesDir, 'e_1.jsonl'), '{"chatId":"e_1","seq":3,"te')
    const loaded = await storage.loadMessages('e_1')
    assert.deepEqual(
      loaded.map((x) => [x.seq, x.text]),
      [
        [1, 'one'],
        [2, null],
      ],
    )
    assert.equal(statSync(join(storage.messagesDir, 'e_1.jsonl')).mode & 0o777, 0o600)
    await storage.dropMessages('e_1')
    assert.deepEqual(await storage.loadMessages('e_1'), [])
  })

  it('MlsDevice: keeps its signature key and group states across opens; refuses another device’s record', async () => {
    const storage = new MemoryMlsStorage()
    const first = await MlsDevice.open(storage, 'cy/laptop')
    const state = await first.createGroup('e_test')
    await first.setGroup('e_test', state, 7)
    const again = await MlsDevice.open(storage, 'cy/laptop')
    assert.deepEqual(again.signaturePublicKey, first.signaturePublicKey)
    assert.equal(again.processedSeq('e_test'), 7)
    const loaded = again.group('e_test')
    assert.ok(loaded)
    assert.equal(epochOf(loaded), 0)
    assert.deepEqual(again.chatIds(), ['e_test'])
    // The state read back holds the same secrets: what it encrypts, the state it was saved from
    // (which has not used that generation of its own sender ratchet) decrypts.
    const sent = await encrypt(loaded, utf8Encoder.encode('hi'))
    assert.equal(utf8Decoder.decode((await decrypt(state, sent.bytes)).plaintext), 'hi')
    await assert.rejects(MlsDevice.open(storage, 'cy/phone'), /holds device cy\/laptop's keys/)
    await again.dropGroup('e_test')
    assert.equal((await storage.load())?.groups.e_test, undefined)
  })
})
