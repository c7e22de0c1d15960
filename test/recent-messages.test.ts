import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { RecentMessages } from '../services/delivery/recent-messages.ts'

const m = (chatId: string, seq: number) => ({ chatId, seq, senderId: 'a', at: seq })
const seqs = (r: Array<{ m: { seq: number } }>) => r.map((x) => x.m.seq)

describe('RecentMessages', () => {
  it('gives consecutive messages after a seq, up to a limit', () => {
    const r = new RecentMessages(8)
    for (let s = 5; s <= 9; s++) r.add(m('c', s), Buffer.from(`${s}`))
    assert.deepEqual(seqs(r.after('c', 4, 10)), [5, 6, 7, 8, 9])
    assert.deepEqual(seqs(r.after('c', 6, 2)), [7, 8])
    assert.equal(r.after('c', 6, 2)[0]?.payload.toString(), '7')
    assert.deepEqual(r.after('c', 9, 10), [], 'nothing newer is known')
    assert.equal(r.last('c'), 9)
    assert.equal(r.last('other'), undefined)
    assert.deepEqual(r.after('c', 2, 10), [], 'seq 3 is not held: the store has it')
    assert.deepEqual(r.after('other', 0, 10), [])
  })

  it('restarts a chat at a gap and ignores what it already has', () => {
    const r = new RecentMessages(8)
    r.add(m('c', 1), Buffer.from('1'))
    r.add(m('c', 2), Buffer.from('2'))
    r.add(m('c', 2), Buffer.from('again'))
    assert.equal(r.after('c', 1, 1)[0]?.payload.toString(), '2')
    r.add(m('c', 5), Buffer.from('5'))
    assert.deepEqual(r.after('c', 0, 10), [], 'seqs 3 and 4 were never heard')
    assert.deepEqual(seqs(r.after('c', 4, 10)), [5])
  })

  it('keeps the newest messages per chat, within a memory bound', () => {
    const r = new RecentMessages(4, 900)
    for (let s = 1; s <= 20; s++) r.add(m('c', s), Buffer.from(`${s}`))
    assert.deepEqual(r.after('c', 0, 100), [])
    assert.deepEqual(seqs(r.after('c', 16, 100)), [17, 18, 19, 20])
    r.add(m('d', 1), Buffer.from('1'))
    r.add(m('e', 1), Buffer.from('1'))
    assert.deepEqual(r.after('c', 16, 100), [], 'the oldest chat went first')
    assert.deepEqual(seqs(r.after('e', 0, 100)), [1])
    assert.ok(r.bytes <= 900)
    r.forget('e')
    r.forget('d')
    assert.equal(r.bytes, 0)
  })

  it('forgets a chat whose messages changed, and everything on clear', () => {
    const r = new RecentMessages()
    r.add(m('c', 1), Buffer.from('1'))
    r.add(m('d', 1), Buffer.from('1'))
    r.forget('c')
    assert.deepEqual(r.after('c', 0, 1), [])
    assert.deepEqual(seqs(r.after('d', 0, 1)), [1])
    r.clear()
    assert.deepEqual(r.after('d', 0, 1), [])
  })

  it('names the senders of a range it holds, and only then', () => {
    const r = new RecentMessages()
    const from = (senderId: string, seq: number) => ({ chatId: 'c', seq, senderId, at: seq })
    r.add(from('bob', 3), Buffer.from('3'))
    r.add(from('alice', 4), Buffer.from('4'))
    r.add(from('bob', 5), Buffer.from('5'))
    assert.deepEqual(r.senders('c', 2, 5), ['alice', 'bob'])
    assert.deepEqual(r.senders('c', 4, 5), ['bob'])
    assert.deepEqual(r.senders('c', 5, 5), [])
    assert.equal(r.senders('c', 1, 5), null, 'seq 2 is not held')
    assert.equal(r.senders('c', 2, 6), null, 'seq 6 is not held')
    assert.equal(r.senders('d', 0, 1), null)
  })
})
