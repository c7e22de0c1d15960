import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { after, before, describe, it } from 'node:test'
import type { MediaCatalog, NewMedia, SweepCutoffs } from '../../services/media/media-catalog.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const unique = (what: string) => `${what}-${process.pid}-${++n}`
const sha = (s: string) => createHash('sha256').update(s).digest('hex')

function upload(o: Partial<NewMedia> = {}): NewMedia {
  return {
    id: unique('m'),
    uploaderId: unique('alice'),
    sha256: sha(unique('bytes')),
    size: 1234,
    contentType: 'image/png',
    kind: 'image',
    name: 'cat.png',
    createdAt: 1000,
    expiresAt: 2000,
    durationMs: null,
    ...o,
  }
}

const facts = { width: 640, height: 480, hasThumbnail: true }

/** What every media catalog must do, whatever holds the records. */
export function mediaCatalogContract(name: string, open: () => Promise<Harness<MediaCatalog>>): void {
  describe(`media catalog contract: ${name}`, () => {
    let h: Harness<MediaCatalog>
    let catalog: MediaCatalog
    before(async () => {
      h = await open()
      catalog = h.store
    })
    after(() => h.cleanup())

    it('records a pending upload, and gives the same record back for the same uploader and checksum', async () => {
      const first = upload()
      const begun = await catalog.begin(first)
      assert.equal(begun.created, true)
      assert.equal(begun.record.status, 'pending')
      assert.deepEqual(begun.record, {
        ...first,
        status: 'pending',
        readyAt: null,
        lastSentAt: null,
        width: null,
        height: null,
        hasThumbnail: false,
      })
      const again = await catalog.begin({ ...upload(), uploaderId: first.uploaderId, sha256: first.sha256 })
      assert.equal(again.created, false)
      assert.equal(again.record.id, first.id)
      const someoneElse = await catalog.begin({ ...upload(), sha256: first.sha256 })
      assert.equal(someoneElse.created, true, 'another uploader of the same bytes gets a record of their own')
      assert.notEqual(someoneElse.record.id, first.id)
      assert.deepEqual(await catalog.get(first.id), begun.record)
      assert.equal(await catalog.get(unique('missing')), null)
    })

    it('keeps the same bytes declared as another type or size beside, pending or ready', async () => {
      const first = upload({ contentType: 'text/plain', kind: 'file', name: 'notes.txt', size: 16 })
      await catalog.begin(first)
      const same = { uploaderId: first.uploaderId, sha256: first.sha256 }
      const asImage = await catalog.begin(
        upload({ ...same, contentType: 'image/jpeg', kind: 'image', name: 'fake.jpg', size: 16 }),
      )
      assert.equal(asImage.created, true, 'another type is a record of its own')
      assert.equal(asImage.record.contentType, 'image/jpeg')
      assert.notEqual(asImage.record.id, first.id)
      const otherSize = await catalog.begin(
        upload({ ...same, contentType: 'text/plain', kind: 'file', size: 17 }),
      )
      assert.equal(otherSize.created, true, 'another size is a record of its own')
      const renamed = await catalog.begin(
        upload({ ...same, contentType: 'text/plain', kind: 'file', size: 16, name: 'other.txt' }),
      )
      assert.deepEqual(
        [renamed.created, renamed.record.id],
        [false, first.id],
        'a name is no part of the key',
      )

      await catalog.complete(first.id, { width: null, height: null, hasThumbnail: false }, 1500)
      const readyAgain = await catalog.begin(
        upload({ ...same, contentType: 'text/plain', kind: 'file', size: 16 }),
      )
      assert.deepEqual([readyAgain.created, readyAgain.record.status], [false, 'ready'])
      const imageAgain = await catalog.begin(
        upload({ ...same, contentType: 'image/jpeg', kind: 'image', size: 16 }),
      )
      assert.deepEqual(
        [imageAgain.created, imageAgain.record.id, imageAgain.record.status],
        [false, asImage.record.id, 'pending'],
        'the pending image beside the ready text is still its own',
      )
      assert.equal((await catalog.uploadedBy(first.uploaderId)).length, 3)
    })

    it('completes a pending upload once, with what the server learnt', async () => {
      const m = upload()
      await catalog.begin(m)
      const ready = await catalog.complete(m.id, facts, 1500)
      assert.equal(ready?.status, 'ready')
      assert.equal(ready?.readyAt, 1500)
      assert.equal(ready?.width, 640)
      assert.equal(ready?.height, 480)
      assert.equal(ready?.hasThumbnail, true)
      assert.equal(await catalog.complete(m.id, facts, 1600), null, 'a second completion changes nothing')
      assert.equal((await catalog.get(m.id))?.readyAt, 1500)
      assert.equal(await catalog.complete(unique('missing'), facts, 1600), null)
    })

    it('extends the deadline of a pending upload, never shortens it', async () => {
      const m = upload()
      await catalog.begin(m)
      await catalog.extend(m.id, 5000)
      assert.equal((await catalog.get(m.id))?.expiresAt, 5000)
      await catalog.extend(m.id, 3000)
      assert.equal((await catalog.get(m.id))?.expiresAt, 5000)
    })

    it('references only ready media, and remembers every chat it was sent in', async () => {
      const m = upload()
      await catalog.begin(m)
      assert.equal(await catalog.reference(m.id, 'chat-a', 1700), false, 'a pending upload cannot be sent')
      assert.deepEqual(await catalog.chatsOf(m.id), [])
      await catalog.complete(m.id, facts, 1500)
      assert.equal(await catalog.reference(m.id, 'chat-a', 1700), true)
      assert.equal(await catalog.reference(m.id, 'chat-b', 1900), true)
      assert.equal(await catalog.reference(m.id, 'chat-a', 1800), true)
      assert.deepEqual((await catalog.chatsOf(m.id)).sort(), ['chat-a', 'chat-b'])
      assert.equal((await catalog.get(m.id))?.lastSentAt, 1900, 'the latest reference counts')
      assert.equal(await catalog.reference(unique('missing'), 'chat-a', 1700), false)
    })

    it('finds what is due for deletion, and marks it only while it still is', async () => {
      const cut = (now: number): SweepCutoffs => ({ now, unsentBefore: now - 100, sentBefore: now - 1000 })
      const expired = upload({ createdAt: 1, expiresAt: 2000 })
      const unsent = upload({ createdAt: 2 })
      const sent = upload({ createdAt: 3 })
      const recent = upload({ createdAt: 4 })
      for (const m of [expired, unsent, sent, recent]) await catalog.begin(m)
      await catalog.complete(unsent.id, facts, 2500)
      await catalog.complete(sent.id, facts, 2500)
      await catalog.reference(sent.id, 'chat-a', 3000)
      await catalog.complete(recent.id, facts, 2950)
      const ids = async (now: number) => {
        const mine = new Set([expired.id, unsent.id, sent.id, recent.id])
        return (await catalog.due(cut(now), 1000)).filter((r) => mine.has(r.id)).map((r) => r.id)
      }
      assert.deepEqual(await ids(1999), [])
      assert.deepEqual(await ids(2601), [expired.id, unsent.id])
      assert.deepEqual(await ids(4001), [expired.id, unsent.id, sent.id, recent.id])

      assert.equal(await catalog.markDeleting(sent.id, cut(2601)), false, 'not due yet')
      assert.equal(await catalog.markDeleting(unsent.id, cut(2601)), true)
      assert.equal((await catalog.get(unsent.id))?.status, 'deleting')
      assert.equal(
        await catalog.reference(unsent.id, 'chat-a', 2700),
        false,
        'media being deleted cannot be sent',
      )
      assert.deepEqual(await ids(2601), [expired.id, unsent.id], 'an unfinished deletion stays due')
      assert.equal(await catalog.markDeleting(unsent.id, cut(2601)), true, 'and can be marked again')

      await catalog.reference(sent.id, 'chat-b', 3900)
      assert.equal(await catalog.markDeleting(sent.id, cut(4001)), false, 'sent again meanwhile')

      await catalog.remove(unsent.id)
      assert.equal(await catalog.get(unsent.id), null)
      assert.deepEqual(await catalog.chatsOf(unsent.id), [])
    })

    it('holds a media no chat carried (a profile photo): no chats, due a week after ready, then sendable all the same', async () => {
      // media.begin with purpose "avatar" records it like any upload, only no chat is checked.
      const cut = (now: number): SweepCutoffs => ({ now, unsentBefore: now - 100, sentBefore: now - 1000 })
      const photo = upload({ createdAt: 1, expiresAt: 2000 })
      await catalog.begin(photo)
      await catalog.complete(photo.id, facts, 5000)
      assert.deepEqual(await catalog.chatsOf(photo.id), [])
      const due = async (now: number) => (await catalog.due(cut(now), 1000)).some((r) => r.id === photo.id)
      // Uploaded long before, ready at 5000: the week (here 100) counts from ready, not from the upload.
      assert.equal(await due(5050), false)
      assert.equal(await catalog.markDeleting(photo.id, cut(5050)), false)
      assert.equal(await due(5101), true)
      // The same bytes begun for a chat are the same record, ready; sent, it has its chat.
      const again = await catalog.begin(upload({ uploaderId: photo.uploaderId, sha256: photo.sha256 }))
      assert.deepEqual([again.created, again.record.id, again.record.status], [false, photo.id, 'ready'])
      assert.equal(await catalog.reference(photo.id, 'chat-a', 5200), true)
      assert.deepEqual(await catalog.chatsOf(photo.id), ['chat-a'])
      assert.equal(await due(5101), false, 'now kept as long as the message that sent it')
      assert.deepEqual(
        (await catalog.uploadedBy(photo.uploaderId)).map((r) => r.id),
        [photo.id],
      )
    })

    it('renews an unsent ready record begun again: its week counts from the new begin, atomically with the sweep', async () => {
      const cut = (now: number): SweepCutoffs => ({ now, unsentBefore: now - 100, sentBefore: now - 1000 })
      const photo = upload({ createdAt: 1, expiresAt: 2000 })
      await catalog.begin(photo)
      await catalog.complete(photo.id, facts, 1000)
      const again = (createdAt: number) =>
        catalog.begin(upload({ uploaderId: photo.uploaderId, sha256: photo.sha256, createdAt }))
      // Picked again at 1090: no longer due at 1150, though readied more than 100 before.
      assert.equal((await again(1090)).record.readyAt, 1090)
      assert.equal(await catalog.markDeleting(photo.id, cut(1150)), false)
      assert.equal((await again(1050)).record.readyAt, 1090, 'never moved back')
      assert.equal(await catalog.markDeleting(photo.id, cut(1191)), true)
      const late = await again(1200)
      assert.deepEqual(
        [late.created, late.record.status, late.record.readyAt],
        [false, 'deleting', 1090],
        'once being deleted it stays so: the caller finishes the deletion',
      )

      const pending = upload()
      await catalog.begin(pending)
      assert.equal(
        (await catalog.begin({ ...upload(), uploaderId: pending.uploaderId, sha256: pending.sha256 })).record
          .readyAt,
        null,
      )
      const sent = upload()
      await catalog.begin(sent)
      await catalog.complete(sent.id, facts, 1000)
      await catalog.reference(sent.id, 'chat-a', 1100)
      const sentAgain = await catalog.begin({
        ...upload({ createdAt: 5000 }),
        uploaderId: sent.uploaderId,
        sha256: sent.sha256,
      })
      assert.equal(sentAgain.record.readyAt, 1000, 'a sent media is kept by its messages instead')
    })

    it('keeps records across a reopen', async () => {
      const m = upload()
      await catalog.begin(m)
      await catalog.complete(m.id, facts, 1500)
      await catalog.reference(m.id, 'chat-a', 1700)
      catalog = await h.reopen()
      assert.equal((await catalog.get(m.id))?.status, 'ready')
      assert.deepEqual(await catalog.chatsOf(m.id), ['chat-a'])
    })

    it("lists every record a user uploaded with uploadedBy, whatever its status, and no one else's", async () => {
      const alice = unique('alice')
      const pending = upload({ uploaderId: alice, createdAt: 3000 })
      const ready = upload({ uploaderId: alice, createdAt: 1000 })
      const deleting = upload({ uploaderId: alice, createdAt: 2000, expiresAt: 2500 })
      for (const m of [pending, ready, deleting]) await catalog.begin(m)
      await catalog.begin(upload({ sha256: ready.sha256 }))
      await catalog.complete(ready.id, facts, 1500)
      // An expired pending upload is due; marked, it is being deleted.
      assert.equal(
        await catalog.markDeleting(deleting.id, { now: 2600, unsentBefore: 0, sentBefore: 0 }),
        true,
      )
      const mine = await catalog.uploadedBy(alice)
      assert.deepEqual(
        mine.map((r) => [r.id, r.status]),
        [
          [ready.id, 'ready'],
          [deleting.id, 'deleting'],
          [pending.id, 'pending'],
        ],
      )
      assert.deepEqual(mine[0], await catalog.get(ready.id))
      await catalog.remove(deleting.id)
      await catalog.purgeErased()
      assert.deepEqual(
        (await catalog.uploadedBy(alice)).map((r) => r.id),
        [ready.id, pending.id],
      )
      assert.deepEqual(await catalog.uploadedBy(unique('nobody')), [])
    })

    it("marks a user's record as being deleted with markDeletingOf, whatever its status", async () => {
      const alice = unique('alice')
      const ready = upload({ uploaderId: alice })
      const pending = upload({ uploaderId: alice })
      const bobs = upload()
      for (const m of [ready, pending, bobs]) await catalog.begin(m)
      await catalog.complete(ready.id, facts, 1500)
      await catalog.reference(ready.id, 'chat-a', 1600)
      assert.equal(await catalog.markDeletingOf(alice, ready.id), true)
      assert.equal(await catalog.markDeletingOf(alice, pending.id), true)
      assert.equal(await catalog.markDeletingOf(alice, pending.id), true, 'again: still marked')
      assert.equal(await catalog.markDeletingOf(alice, bobs.id), false, "not another user's")
      assert.equal(await catalog.markDeletingOf(alice, unique('gone')), false)
      assert.equal((await catalog.get(ready.id))?.status, 'deleting')
      assert.equal((await catalog.get(bobs.id))?.status, 'pending')
      assert.equal(await catalog.reference(ready.id, 'chat-b', 1700), false, 'no longer sent')
      const due = (await catalog.due({ now: 1, unsentBefore: 0, sentBefore: 0 }, 1000)).map((r) => r.id)
      assert.ok(due.includes(ready.id) && due.includes(pending.id), 'the sweep finishes what was left')
    })
  })
}
