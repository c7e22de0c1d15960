import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { UndeliveredTracker } from '../services/messages/undelivered-tracker.ts'

describe('UndeliveredTracker', () => {
  it('counts what was fanned out and not acknowledged, and ages the oldest', () => {
    const t = new UndeliveredTracker()
    t.sent('bob', 'c1', 1, 1000)
    t.sent('bob', 'c1', 2, 2000)
    t.sent('bob', 'c2', 7, 1500)
    t.sent('carol', 'c1', 1, 1000)
    assert.equal(t.count(), 4)
    assert.equal(t.oldestAgeSeconds(5000), 4)
    t.acked('bob', 'c1', 1)
    t.acked('carol', 'c1', 2)
    assert.equal(t.count(), 2)
    assert.equal(t.oldestAgeSeconds(5000), 3.5)
    t.acked('bob', 'c2', 7)
    assert.equal(t.oldestAgeSeconds(5000), 3)
    t.acked('bob', 'c1', 1)
    assert.equal(t.count(), 1, 'an old acknowledgement changes nothing')
    t.offline('bob')
    assert.equal(t.count(), 0)
    assert.equal(t.oldestAgeSeconds(5000), 0)
  })

  it('keeps order and count over long runs of acknowledgements', () => {
    const t = new UndeliveredTracker()
    for (let s = 1; s <= 5000; s++) {
      t.sent('bob', 'c', s, s)
      if (s % 3 === 0) t.acked('bob', 'c', s - 1)
    }
    // The last acknowledgement (at 4,998) was up to 4,997.
    assert.equal(t.count(), 3)
    assert.equal(t.oldestAgeSeconds(5000), 0.002)
  })

  it('holds at most 10,000 per user, the oldest', () => {
    const t = new UndeliveredTracker()
    for (let s = 1; s <= 12_000; s++) t.sent('bob', `c${s % 3}`, s, s)
    assert.equal(t.count(), 10_000)
    assert.equal(t.oldestAgeSeconds(12_000), 11.999)
  })
})
