import assert from 'node:assert/strict'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import { SqliteBlockStore } from '../services/blocks/sqlite-block-store.ts'
import { SqliteChatStore } from '../services/chats/sqlite-chat-store.ts'
import { SqliteDeliveryStore } from '../services/delivery/sqlite-delivery-store.ts'
import { SqliteMediaCatalog } from '../services/media/sqlite-media-catalog.ts'
import { SqliteProfileStore } from '../services/profiles/sqlite-profile-store.ts'
import { SqlitePushStore } from '../services/push/sqlite-push-store.ts'

/**
 * What an erased user's data leaves in the SQLite files of the stores other than messages
 * (test/message-store.sqlite.test.ts has those): after the store's removal and purgeErased, the raw
 * bytes of the file, its -wal and -shm hold none of it, while another user's is still there.
 */
describe('SQLite stores: removed data leaves the files after purgeErased', () => {
  let dir: string
  before(() => {
    dir = mkdtempSync(join(tmpdir(), 'natter-sqlite-erase-'))
  })
  after(() => rmSync(dir, { recursive: true, force: true }))

  /** Whether some file of the database (main, -wal, -shm) holds the string, as raw bytes. */
  const inFiles = (path: string, s: string): boolean =>
    [path, `${path}-wal`, `${path}-shm`]
      .filter(existsSync)
      .some((f) => readFileSync(f).includes(Buffer.from(s)))

  it('profiles: a removed display name', async () => {
    const path = join(dir, 'profiles.db')
    const store = new SqliteProfileStore(path)
    try {
      await store.set({
        userId: 'u-alice',
        displayName: 'Xanthippe Quuxley',
        avatar: 'm_qwertyavatar',
        at: 1,
      })
      await store.set({ userId: 'u-bob', displayName: 'Bartholomew Keep', at: 2 })
      await store.set({ userId: 'u-alice', displayName: 'Xanthippe Renamed', at: 3 })
      assert.ok(inFiles(path, 'Xanthippe Quuxley'))
      assert.equal(await store.remove('u-alice'), true)
      await store.purgeErased()
      for (const s of ['Xanthippe', 'Quuxley', 'qwertyavatar', 'u-alice'])
        assert.equal(inFiles(path, s), false, s)
      assert.ok(inFiles(path, 'Bartholomew Keep'))
    } finally {
      await store.close()
    }
  })

  it('push: removed registrations (tokens), mutes and jobs', async () => {
    const path = join(dir, 'push.db')
    const store = new SqlitePushStore(path)
    try {
      const base = {
        platform: 'fcm' as const,
        apnsTopic: null,
        sandbox: false,
        locale: null,
        hideText: false,
      }
      await store.register({
        ...base,
        userId: 'u-alice',
        deviceId: 'd-zebraphone',
        token: 'tok-alicesecret',
        updatedAt: 1,
      })
      await store.register({
        ...base,
        userId: 'u-bob',
        deviceId: 'd-bob',
        token: 'tok-bobkept',
        updatedAt: 1,
      })
      await store.setMuted('u-alice', 'chat-mutedbyalice', true)
      await store.enqueue([
        { userId: 'u-alice', deviceId: 'd-zebraphone', chatId: 'chat-jobofalice', seq: 1, dueAt: 1 },
      ])
      assert.ok(inFiles(path, 'tok-alicesecret'))
      assert.equal(await store.forgetUser('u-alice'), 3)
      await store.purgeErased()
      for (const s of ['tok-alicesecret', 'zebraphone', 'mutedbyalice', 'jobofalice', 'u-alice'])
        assert.equal(inFiles(path, s), false, s)
      assert.ok(inFiles(path, 'tok-bobkept'))
    } finally {
      await store.close()
    }
  })

  it('delivery: removed device sessions, cursors and revocations', async () => {
    const path = join(dir, 'delivery.db')
    const store = new SqliteDeliveryStore(path)
    try {
      const alice = { userId: 'u-alice', deviceId: 'd-kumquatphone' }
      await store.connect({ ...alice, clean: false, conn: 'conn-alice', at: 1 })
      await store.advance([{ ...alice, chatId: 'chat-cursorofalice', seq: 3 }])
      await store.revoke({ userId: 'u-alice', deviceId: 'd-revokedtablet', before: 5, except: null })
      await store.connect({ userId: 'u-bob', deviceId: 'd-bobkept', clean: false, conn: 'conn-bob', at: 1 })
      assert.ok(inFiles(path, 'd-kumquatphone'))
      assert.deepEqual(await store.forgetUser('u-alice'), [alice])
      await store.purgeErased()
      for (const s of ['kumquatphone', 'cursorofalice', 'revokedtablet', 'conn-alice', 'u-alice'])
        assert.equal(inFiles(path, s), false, s)
      assert.ok(inFiles(path, 'd-bobkept'))
    } finally {
      await store.close()
    }
  })

  it('media catalog: a removed record (file name, checksum)', async () => {
    const path = join(dir, 'media.db')
    const store = new SqliteMediaCatalog(path)
    try {
      const media = {
        uploaderId: 'u-alice',
        size: 10,
        contentType: 'image/png',
        kind: 'image' as const,
        createdAt: 1,
        expiresAt: 2,
        durationMs: null,
      }
      await store.begin({ ...media, id: 'm-alice1', sha256: 'ab'.repeat(32), name: 'holiday-xanadu.png' })
      await store.begin({
        ...media,
        id: 'm-bob1',
        uploaderId: 'u-bob',
        sha256: 'cd'.repeat(32),
        name: 'bob-kept.png',
      })
      await store.complete('m-alice1', { width: 1, height: 1, hasThumbnail: false }, 1)
      await store.reference('m-alice1', 'chat-sentinto', 2)
      for (const r of await store.uploadedBy('u-alice')) {
        assert.equal(await store.markDeletingOf('u-alice', r.id), true)
        await store.remove(r.id)
      }
      await store.purgeErased()
      for (const s of ['holiday-xanadu', 'ab'.repeat(32), 'm-alice1', 'u-alice'])
        assert.equal(inFiles(path, s), false, s)
      assert.ok(inFiles(path, 'bob-kept.png'))
    } finally {
      await store.close()
    }
  })

  it("chats: a removed member's cursors and presence; blocks: every block by or of the user", async () => {
    const chatsPath = join(dir, 'chats.db')
    const blocksPath = join(dir, 'blocks.db')
    const chats = new SqliteChatStore(chatsPath)
    const blocks = new SqliteBlockStore(blocksPath)
    try {
      await chats.createGroup({
        id: 'g-1',
        name: 'Group',
        createdBy: 'u-bob',
        members: ['u-quibblefrog'],
        at: 1,
      })
      await chats.advanceCursor({ chatId: 'g-1', userId: 'u-quibblefrog', kind: 'read', seq: 2 })
      await chats.setPresence({ userId: 'u-quibblefrog', online: true, lastSeen: 5 })
      await chats.setPresence({ userId: 'u-bob', online: true, lastSeen: 5 })
      await blocks.block({ blockerId: 'u-quibblefrog', blockedId: 'u-bob', at: 1 })
      await blocks.block({ blockerId: 'u-carol', blockedId: 'u-quibblefrog', at: 1 })
      await blocks.block({ blockerId: 'u-carol', blockedId: 'u-bob', at: 1 })
      await chats.removeMember('g-1', 'u-quibblefrog')
      await chats.forgetUser('u-quibblefrog')
      assert.equal(await blocks.removeUser('u-quibblefrog'), 2)
      await chats.purgeErased()
      await blocks.purgeErased()
      assert.equal(inFiles(chatsPath, 'quibblefrog'), false)
      assert.equal(inFiles(blocksPath, 'quibblefrog'), false)
      assert.ok(inFiles(chatsPath, 'u-bob'))
      assert.ok(inFiles(blocksPath, 'u-carol'))
    } finally {
      await chats.close()
      await blocks.close()
    }
  })
})
