import assert from 'node:assert/strict'
import { after, before, describe, it } from 'node:test'
import type { MessageStore, NewMessage } from '../../services/messages/message-store.ts'
import type { Harness } from '../helpers/store-harness.ts'

let n = 0
const uniqueChat = () => `chat-${process.pid}-${++n}`

const msg = (
  chatId: string,
  clientMsgId: string,
  text: string | null = 'hello',
  senderId = 'alice',
): NewMessage => ({
  chatId,
  senderId,
  deviceId: 'phone',
  clientMsgId,
  kind: 'text',
  text,
  body: { media: ['m1'], replyTo: null },
})

/** What every message store must do, whatever holds the data (the aedes-persistence way). */
export function messageStoreContract(name: string, open: () => Promise<Harness<MessageStore>>): void {
  describe(`message store contract: ${name}`, () => {
    let h: Harness<MessageStore>
    let store: MessageStore
    before(async () => {
      h = await open()
      store = h.store
    })
    after(() => h.cleanup())

    it('numbers each chat 1, 2, 3… on its own and keeps what was sent', async () => {
      const a = uniqueChat()
      const b = uniqueChat()
      const r1 = await store.append(msg(a, 'c1', 'first'), 1000)
      const r2 = await store.append(msg(a, 'c2', 'second'))
      const r3 = await store.append(msg(b, 'c1', 'other chat'))
      assert.deepEqual([r1.message.seq, r2.message.seq, r3.message.seq], [1, 2, 1])
      assert.equal(r1.duplicate, false)
      assert.deepEqual(await store.get(a, 1), {
        ...msg(a, 'c1', 'first'),
        seq: 1,
        at: 1000,
        editedAt: null,
        deletedAt: null,
      })
      assert.equal(await store.lastSeq(a), 2)
      assert.equal(await store.lastSeq(uniqueChat()), 0)
    })

    it('stores a clientMsgId once and answers a retry with the first sequence number', async () => {
      const c = uniqueChat()
      const first = await store.append(msg(c, 'same', 'once'))
      const again = await store.append(msg(c, 'same', 'changed on retry'))
      assert.equal(again.duplicate, true)
      assert.equal(again.message.seq, first.message.seq)
      assert.equal(again.message.text, 'once')
      // Another sender's id is its own namespace.
      const bob = await store.append(msg(c, 'same', 'from bob', 'bob'))
      assert.equal(bob.duplicate, false)
      assert.equal((await store.after(c, 0, 10)).length, 2)
    })

    it('gives concurrent appends distinct, gap-free sequence numbers', async () => {
      const c = uniqueChat()
      const results = await Promise.all(
        Array.from({ length: 100 }, (_, i) => store.append(msg(c, `c${i}`, `m${i}`))),
      )
      const seqs = results.map((r) => r.message.seq).sort((x, y) => x - y)
      assert.deepEqual(
        seqs,
        Array.from({ length: 100 }, (_, i) => i + 1),
      )
      const stored = await store.after(c, 0, 1000)
      assert.deepEqual(
        stored.map((m) => m.seq),
        seqs,
      )
    })

    it('stores concurrent retries of one clientMsgId once', async () => {
      const c = uniqueChat()
      const results = await Promise.all(Array.from({ length: 10 }, () => store.append(msg(c, 'retry'))))
      assert.equal(new Set(results.map((r) => r.message.seq)).size, 1)
      assert.equal(results.filter((r) => !r.duplicate).length, 1)
      assert.equal((await store.after(c, 0, 10)).length, 1)
    })

    it('answers a retry sent together with its first attempt, and numbers the rest without a gap', async () => {
      const c = uniqueChat()
      const [first, retry, next] = await Promise.all([
        store.append(msg(c, 'b1', 'first try')),
        store.append(msg(c, 'b1', 'second try')),
        store.append(msg(c, 'b2', 'next')),
      ])
      assert.deepEqual(
        [first, retry, next].map((r) => [r?.message.seq, r?.duplicate]),
        [
          [1, false],
          [1, true],
          [2, false],
        ],
      )
      assert.equal(retry?.message.text, 'first try')
      assert.deepEqual(retry?.message, first?.message)
      assert.equal((await store.append(msg(c, 'b3'))).message.seq, 3)
    })

    it('finds a message as soon as its append has resolved', async () => {
      const c = uniqueChat()
      const sent = await Promise.all(
        Array.from({ length: 50 }, (_, i) => store.append(msg(c, `f${i}`, `needle number ${i}`))),
      )
      assert.deepEqual(
        (await store.search(c, 'needle', 100)).map((m) => m.seq),
        sent.map((r) => r.message.seq).sort((x, y) => y - x),
      )
      await store.append(msg(c, 'f-last', 'haystack'))
      assert.deepEqual(
        (await store.search(c, 'haystack', 10)).map((m) => m.seq),
        [51],
      )
    })

    it('pages forwards for sync and backwards for history', async () => {
      const c = uniqueChat()
      for (let i = 1; i <= 7; i++) await store.append(msg(c, `c${i}`, `m${i}`))
      assert.deepEqual(
        (await store.after(c, 2, 3)).map((m) => m.seq),
        [3, 4, 5],
      )
      assert.deepEqual(
        (await store.after(c, 7, 3)).map((m) => m.seq),
        [],
      )
      assert.deepEqual(
        (await store.before(c, null, 3)).map((m) => m.seq),
        [7, 6, 5],
      )
      assert.deepEqual(
        (await store.before(c, 5, 10)).map((m) => m.seq),
        [4, 3, 2, 1],
      )
    })

    it('edits the text of a live message, and search follows the edit', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'e1', 'see you at noon'))
      const edited = await store.edit(c, 1, 'see you at one', 5000)
      assert.equal(edited?.text, 'see you at one')
      assert.equal(edited?.editedAt, 5000)
      assert.deepEqual(await store.search(c, 'noon', 10), [])
      assert.deepEqual(
        (await store.search(c, 'ONE', 10)).map((m) => m.seq),
        [1],
      )
      assert.equal(await store.edit(c, 99, 'nothing there', 5000), null)
    })

    it('leaves a tombstone when a message is deleted, kept in sync but out of search', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'd1', 'secret plan'))
      await store.append(msg(c, 'd2', 'later'))
      const gone = await store.tombstone(c, 1, 7000)
      assert.equal(gone?.deletedAt, 7000)
      assert.equal(gone?.text, null)
      assert.deepEqual(gone?.body, {})
      assert.deepEqual(
        (await store.after(c, 0, 10)).map((m) => [m.seq, m.deletedAt]),
        [
          [1, 7000],
          [2, null],
        ],
      )
      assert.deepEqual(await store.search(c, 'secret', 10), [])
      assert.equal(await store.edit(c, 1, 'revive', 8000), null)
    })

    it('leaves a message hidden from a blocker out of their unread count, also as a tombstone', async () => {
      const c = uniqueChat()
      const hidden = (clientMsgId: string, text: string) => ({
        ...msg(c, clientMsgId, text, 'bob'),
        body: { media: ['m1'], hiddenFrom: 'alice' },
      })
      await store.append(msg(c, 'h1', 'seen', 'bob'))
      await store.append(hidden('h2', 'not for alice'))
      await store.append(hidden('h3', 'nor this'))
      assert.equal(await store.countUnread(c, 0, 'alice'), 1)
      assert.equal(await store.countUnread(c, 0, 'carol'), 3)
      // The marker outlives an edit and a delete: the tombstone stays hidden from alice too.
      assert.equal((await store.edit(c, 2, 'edited', 5000))?.body.hiddenFrom, 'alice')
      const gone = await store.tombstone(c, 3, 6000)
      assert.deepEqual(gone?.body, { hiddenFrom: 'alice' })
      assert.equal(gone?.text, null)
      assert.deepEqual((await store.get(c, 3))?.body, { hiddenFrom: 'alice' })
      assert.equal(await store.countUnread(c, 0, 'alice'), 1)
    })

    it('finds messages that hold every word, newest first, in that chat only', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 's1', 'Lunch at the Café?'))
      await store.append(msg(c, 's2', 'no lunch today'))
      await store.append(msg(c, 's3', 'café lunch, definitely'))
      await store.append(msg(uniqueChat(), 's4', 'lunch café elsewhere'))
      assert.deepEqual(
        (await store.search(c, 'lunch café', 10)).map((m) => m.seq),
        [3, 1],
      )
      assert.deepEqual(
        (await store.search(c, 'lunch', 2)).map((m) => m.seq),
        [3, 2],
      )
      assert.deepEqual(await store.search(c, '  ?! ', 10), [])
    })

    /** The seqs a search finds, newest first. */
    const found = async (chatId: string, query: string) =>
      (await store.search(chatId, query, 50)).map((m) => m.seq)

    it('finds words in scripts written without spaces: Chinese, Japanese, Thai', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'zh', '我家在上海东边。'))
      await store.append(msg(c, 'ja', '病院は機能していない'))
      await store.append(msg(c, 'th', 'ฉันดื่มน้ำเย็นทุกวัน'))
      await store.append(msg(c, 'ja-hw', 'ﾋﾞｮｳｲﾝへ行く'))
      assert.deepEqual(await found(c, '上海'), [1])
      assert.deepEqual(await found(c, '东边'), [1])
      assert.deepEqual(await found(c, '病院'), [2])
      assert.deepEqual(await found(c, '機能'), [2])
      assert.deepEqual(await found(c, 'น้ำ'), [3])
      assert.deepEqual(await found(c, 'ดื่ม'), [3])
      // Full-width and half-width forms are the same word.
      assert.deepEqual(await found(c, 'ビョウイン'), [4])
      // The last word is a prefix of a segmented word: 上 finds 上海, 海 (inside it) does not.
      assert.deepEqual(await found(c, '上'), [1])
      assert.deepEqual(await found(c, '海'), [])
      assert.deepEqual(await found(c, '上 '), [])
    })

    it('finds Hindi words with their matras, whole and by prefix, and never without them', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'hi1', 'हिन्दी भाषा की किताबें'))
      await store.append(msg(c, 'hi2', 'मेरी किताब यहाँ है'))
      assert.deepEqual(await found(c, 'किताबें'), [1])
      assert.deepEqual(await found(c, 'किताब'), [2, 1], 'a prefix of किताबें')
      assert.deepEqual(await found(c, 'किताब '), [2], 'the whole word')
      assert.deepEqual(await found(c, 'हिन्'), [1])
      assert.deepEqual(await found(c, 'भाषा हिन्दी'), [1])
      // A matra spells the word: without ि it is another one.
      assert.deepEqual(await found(c, 'कताबें'), [])
    })

    it('matches Arabic with and without harakat and tatweel', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'ar1', 'مَرْحَبًا يا صَدِيقِي'))
      await store.append(msg(c, 'ar2', 'مرحبا بالجميع'))
      assert.deepEqual(await found(c, 'مرحبا'), [2, 1])
      assert.deepEqual(await found(c, 'مَرْحَبًا'), [2, 1])
      assert.deepEqual(await found(c, 'مرحـــبا'), [2, 1])
      assert.deepEqual(await found(c, 'صديقي'), [1])
    })

    it('matches Hebrew with and without niqqud', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'he1', 'שָׁלוֹם עֲלֵיכֶם'))
      await store.append(msg(c, 'he2', 'שלום לכולם'))
      assert.deepEqual(await found(c, 'שלום'), [2, 1])
      assert.deepEqual(await found(c, 'שָׁלוֹם'), [2, 1])
      assert.deepEqual(await found(c, 'עליכם'), [1])
    })

    it('matches German case and umlauts: Straße, STRASSE, strasse; Müller, muller', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'de1', 'Die Straße ist gesperrt'))
      await store.append(msg(c, 'de2', 'Herr Müller kommt'))
      for (const q of ['Straße', 'STRASSE', 'strasse', 'STRAẞE', 'strass'])
        assert.deepEqual(await found(c, q), [1], q)
      for (const q of ['Müller', 'muller', 'MÜLLER', 'mull']) assert.deepEqual(await found(c, q), [2], q)
    })

    it('matches Turkish İ, I, ı and i alike', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'tr1', 'İstanbul çok güzel'))
      await store.append(msg(c, 'tr2', 'ılık bir gün'))
      for (const q of ['İstanbul', 'istanbul', 'ISTANBUL', 'guzel'])
        assert.deepEqual(await found(c, q), [1], q)
      for (const q of ['ılık', 'ILIK', 'ilik']) assert.deepEqual(await found(c, q), [2], q)
    })

    it('takes the last word of a query as a prefix unless the query ends outside it', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'p1', 'pineapple pizza'))
      await store.append(msg(c, 'p2', 'my PIN code'))
      await store.append(msg(c, 'p3', 'spinach'))
      assert.deepEqual(await found(c, 'pin'), [2, 1])
      assert.deepEqual(await found(c, 'Pine'), [1])
      assert.deepEqual(await found(c, 'pin '), [2])
      assert.deepEqual(await found(c, 'pin?'), [2])
      assert.deepEqual(await found(c, 'pineapple piz'), [1])
      // Only the last word: "pin" before "pizza" must be whole.
      assert.deepEqual(await found(c, 'pin pizza'), [])
      assert.deepEqual(await found(c, 'code my'), [2])
      // Characters that mean something to a regex or to FTS5 are not words.
      assert.deepEqual(await found(c, 'pin.*'), [2])
      assert.deepEqual(await found(c, '(pi'), [2, 1])
      assert.deepEqual(await found(c, 'pi"'), [])
    })

    it('searches one chat only, in every script', async () => {
      const c = uniqueChat()
      const other = uniqueChat()
      await store.append(msg(other, 'x1', '我家在上海东边。 pineapple'))
      await store.append(msg(c, 'x1', 'nothing here'))
      await store.append(msg(c, 'x2', '上海东边 pineapple'))
      assert.deepEqual(await found(c, '上海'), [2])
      assert.deepEqual(await found(c, 'pine'), [2])
      assert.deepEqual(await found(other, '上'), [1])
    })

    it('indexes the text of an edit in place of the text sent', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'ed1', '我家在上海东边。'))
      await store.edit(c, 1, '病院は機能していない', 5000)
      assert.deepEqual(await found(c, '上海'), [])
      assert.deepEqual(await found(c, '病'), [1])
      await store.edit(c, 1, 'Straße', 6000)
      assert.deepEqual(await found(c, '病院'), [])
      assert.deepEqual(await found(c, 'STRASSE'), [1])
    })

    it('counts unread messages from others and names the senders of a range', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'u1', 'hi', 'alice'))
      await store.append(msg(c, 'u2', 'hey', 'bob'))
      await store.append(msg(c, 'u3', 'news', 'carol'))
      await store.append({
        ...msg(c, 'u4', null, 'bob'),
        kind: 'event',
        body: { event: { type: 'member_added' } },
      })
      await store.append(msg(c, 'u5', 'gone', 'bob'))
      await store.tombstone(c, 5, 9000)
      assert.equal(await store.countUnread(c, 0, 'alice'), 2)
      assert.equal(await store.countUnread(c, 2, 'alice'), 1)
      assert.equal(await store.countUnread(c, 0, 'bob'), 2)
      assert.deepEqual(await store.sendersBetween(c, 0, 3), ['alice', 'bob', 'carol'])
      assert.deepEqual(await store.sendersBetween(c, 1, 2), ['bob'])
      assert.deepEqual(await store.sendersBetween(c, 5, 9), [])
    })

    it('removes messages past retention without reusing their sequence numbers', async () => {
      const c = uniqueChat()
      await store.append(msg(c, 'r1', 'old words'), 1_000)
      await store.append(msg(c, 'r2', 'new words'), 10_000_000_000_000)
      assert.ok((await store.deleteOlderThan(2_000)) >= 1)
      assert.deepEqual(
        (await store.after(c, 0, 10)).map((m) => m.seq),
        [2],
      )
      assert.deepEqual(await store.search(c, 'old', 10), [])
      assert.equal((await store.append(msg(c, 'r3'))).message.seq, 3)
    })

    it('finds the highest seq accepted before a time, a message exactly at it not included', async () => {
      const c = uniqueChat()
      assert.equal(await store.seqBefore(c, 5_000), 0, 'a chat without messages')
      await store.append(msg(c, 'b1'), 1_000)
      await store.append(msg(c, 'b2'), 2_000)
      await store.append(msg(c, 'b3'), 2_000)
      await store.append(msg(c, 'b4'), 3_000)
      await store.append(msg(uniqueChat(), 'elsewhere'), 1_500)
      assert.equal(await store.seqBefore(c, 1_000), 0, 'exactly at is not before')
      assert.equal(await store.seqBefore(c, 1_001), 1)
      assert.equal(await store.seqBefore(c, 2_000), 1)
      assert.equal(await store.seqBefore(c, 2_001), 3, 'the highest of messages with the same time')
      assert.equal(await store.seqBefore(c, 10_000), 4)
      // A clock that stepped back: seq 5 is accepted with an earlier time than seq 4.
      await store.append(msg(c, 'b5'), 2_500)
      assert.equal(await store.seqBefore(c, 2_600), 5, 'the highest seq, not the newest time')
      assert.equal(await store.seqBefore(c, 2_500), 3)
    })

    it('lists the messages up to a seq edited or deleted at or after a time, in seq order', async () => {
      const c = uniqueChat()
      for (let i = 1; i <= 5; i++) await store.append(msg(c, `e${i}`, `text ${i}`), 1_000)
      await store.edit(c, 2, 'edited early', 2_000)
      await store.edit(c, 4, 'edited late', 5_000)
      await store.tombstone(c, 1, 6_000)
      await store.tombstone(c, 5, 7_000)
      assert.deepEqual(await store.changedSince(uniqueChat(), 10, 0, 10), [], 'another chat')
      const changed = await store.changedSince(c, 4, 5_000, 10)
      assert.deepEqual(
        changed.map((m) => [m.seq, m.text, m.deletedAt]),
        [
          [1, null, 6_000],
          [4, 'edited late', null],
        ],
        'seq 2 changed before the time, seq 5 is past uptoSeq',
      )
      assert.deepEqual(
        (await store.changedSince(c, 10, 0, 2)).map((m) => m.seq),
        [1, 2],
        'at most limit',
      )
      assert.deepEqual(
        (await store.changedSince(c, 10, 7_000, 10)).map((m) => m.seq),
        [5],
        'a change exactly at the time is included',
      )
      assert.deepEqual(await store.changedSince(c, 10, 7_001, 10), [], 'nothing after the last change')
    })

    it("pages a sender's text messages with sentBy: live and tombstones, no events, no one else's", async () => {
      const c = uniqueChat()
      for (let i = 1; i <= 7; i++) await store.append(msg(c, `a${i}`, `alice ${i}`))
      await store.append(msg(c, 'b1', 'bob 1', 'bob'))
      await store.append({ ...msg(c, 'e1', null), kind: 'event', body: { event: 'joined' } })
      await store.append(msg(c, 'a8', 'alice 8'))
      await store.tombstone(c, 2, 5_000)
      const pages: number[][] = []
      let afterSeq = 0
      for (;;) {
        const page = await store.sentBy(c, 'alice', afterSeq, 3)
        if (page.length === 0) break
        pages.push(page.map((m) => m.seq))
        afterSeq = page.at(-1)?.seq ?? afterSeq
      }
      assert.deepEqual(pages, [
        [1, 2, 3],
        [4, 5, 6],
        [7, 10],
      ])
      const [first, second] = await store.sentBy(c, 'alice', 0, 2)
      assert.equal(first?.text, 'alice 1')
      assert.equal(second?.deletedAt, 5_000, 'the tombstone is included')
      assert.deepEqual(
        (await store.sentBy(c, 'bob', 0, 10)).map((m) => m.text),
        ['bob 1'],
      )
      assert.deepEqual(await store.sentBy(c, 'carol', 0, 10), [])
      assert.deepEqual(await store.sentBy(uniqueChat(), 'alice', 0, 10), [])
    })

    it("erases a sender's messages with eraseSender: content gone, seqs and others' messages kept", async () => {
      const c = uniqueChat()
      const other = uniqueChat()
      await store.append(msg(c, 'a1', 'zanzibar quokka one'), 1_000)
      await store.append(msg(c, 'b1', 'zanzibar from bob', 'bob'), 1_001)
      await store.append(
        { ...msg(c, 'a2', 'zanzibar hidden'), body: { hiddenFrom: 'carol', replyTo: 1 } },
        1_002,
      )
      await store.append(
        { ...msg(c, 'a3', null), kind: 'event', body: { event: 'renamed', name: 'Secret' } },
        1_003,
      )
      await store.append(msg(c, 'a4', 'zanzibar edited before'), 1_004)
      await store.edit(c, 5, 'zanzibar edited after', 2_000)
      await store.append(msg(c, 'a5', 'zanzibar deleted'), 1_005)
      await store.tombstone(c, 6, 3_000)
      await store.append(msg(other, 'a1', 'zanzibar elsewhere'))
      // The sender chose a clientMsgId like the marker of one of their own seqs.
      await store.append(msg(c, 'erased:6', 'zanzibar marker clash'), 1_006)

      const before = Date.now()
      assert.equal(await store.eraseSender(c, 'alice', 2), 2)
      assert.equal(await store.eraseSender(c, 'alice', 100), 4)
      assert.equal(await store.eraseSender(c, 'alice', 100), 0, 'none left: idempotent')
      await store.purgeErased()

      const all = await store.after(c, 0, 100)
      assert.deepEqual(
        all.map((m) => [m.seq, m.senderId, m.kind]),
        [
          [1, 'alice', 'text'],
          [2, 'bob', 'text'],
          [3, 'alice', 'text'],
          [4, 'alice', 'event'],
          [5, 'alice', 'text'],
          [6, 'alice', 'text'],
          [7, 'alice', 'text'],
        ],
      )
      for (const m of all.filter((m) => m.senderId === 'alice')) {
        assert.equal(m.text, null)
        assert.equal(m.deviceId, '')
        assert.equal(m.clientMsgId, `erased:${m.seq}`)
        assert.deepEqual(m.body, m.seq === 3 ? { hiddenFrom: 'carol' } : {}, `body of ${m.seq}`)
        assert.ok(m.deletedAt !== null && (m.seq === 6 ? m.deletedAt === 3_000 : m.deletedAt >= before))
      }
      assert.equal(all[0]?.at, 1_000, 'the time of the seq stays')
      assert.equal(all[4]?.editedAt, 2_000)
      assert.deepEqual(
        (await store.search(c, 'zanzibar', 10)).map((m) => m.seq),
        [2],
        "only bob's message is found",
      )
      assert.deepEqual(await store.search(c, 'quokka', 10), [])
      assert.deepEqual(await store.search(c, 'edited', 10), [])
      assert.equal((await store.after(other, 0, 10))[0]?.text, 'zanzibar elsewhere', 'another chat untouched')
      assert.equal((await store.get(c, 2))?.text, 'zanzibar from bob')
      assert.equal((await store.get(c, 2))?.clientMsgId, 'b1')
      // The seq stays taken: the next message follows it.
      assert.equal((await store.append(msg(c, 'a6', 'new one'))).message.seq, 8)
      // An erased message's old clientMsgId is free again, and a retry of it makes a new message.
      assert.equal((await store.append(msg(c, 'a1', 'again'))).duplicate, false)
      assert.equal(await store.eraseSender(c, 'alice', 0), 0)
    })

    it('erases a sender with many messages in pages', async () => {
      const c = uniqueChat()
      await Promise.all(Array.from({ length: 45 }, (_, i) => store.append(msg(c, `p${i}`, `page ${i}`))))
      await store.append(msg(c, 'b', 'page bob', 'bob'))
      const counts: number[] = []
      for (;;) {
        const n = await store.eraseSender(c, 'alice', 20)
        counts.push(n)
        if (n === 0) break
      }
      assert.deepEqual(counts, [20, 20, 5, 0])
      assert.deepEqual(
        (await store.search(c, 'page', 100)).map((m) => m.senderId),
        ['bob'],
      )
      assert.equal(await store.countUnread(c, 0, 'carol'), 1)
    })

    it('keeps every acknowledged append across a close and reopen', async () => {
      const c = uniqueChat()
      const sent = await Promise.all(
        Array.from({ length: 20 }, (_, i) => store.append(msg(c, `k${i}`, `keep ${i}`))),
      )
      store = await h.reopen()
      const kept = await store.after(c, 0, 100)
      assert.deepEqual(
        kept.map((m) => m.seq),
        sent.map((r) => r.message.seq).sort((x, y) => x - y),
      )
      assert.equal((await store.append(msg(c, 'k-next'))).message.seq, 21)
    })
  })
}
