import assert from 'node:assert/strict'
import { describe, it } from 'node:test'
import { offlineLoad, offlineLoadTable, QUICK } from '../scripts/offline-load.ts'

/**
 * The offline-load check at its quick preset (npm run offline-load -- --quick): one node process
 * (embedded default), 100 persistent devices of 10 users offline while 10,000 messages are sent
 * over the 45 direct chats between them; when they come back, every device gets every message
 * of its chats, each seq once and in order, and the node’s RSS stays under the bound. 7-20 s
 * on a 2-core machine; `npm run offline-load` runs the full size (1,000 devices, 100,000 messages).
 */

const TIMEOUT_MS = 120_000
const CLEANUP_MARGIN_MS = 20_000

describe('offline load (quick preset)', () => {
  it('every device gets every message it missed, once and in order, and the node stays under its RSS bound', {
    timeout: TIMEOUT_MS,
  }, async (t) => {
    const r = await offlineLoad({
      ...QUICK,
      log: (line) => t.diagnostic(line),
      signal: AbortSignal.any([t.signal, AbortSignal.timeout(TIMEOUT_MS - CLEANUP_MARGIN_MS)]),
    })
    for (const line of offlineLoadTable(r).split('\n')) t.diagnostic(line)
    assert.equal(r.sent, QUICK.messages)
    assert.equal(r.stored, r.sent, 'every acknowledged message is in the store')
    assert.equal(r.refused, 0)
    assert.equal(r.expected, r.sent * 2 * ((QUICK.devices ?? 0) / (QUICK.users ?? 1)))
    assert.deepEqual(
      {
        received: r.received,
        missing: r.missing,
        repeated: r.repeated,
        outOfOrder: r.outOfOrder,
        sessionsLost: r.sessionsLost,
        dropped: r.dropped,
      },
      { received: r.expected, missing: 0, repeated: 0, outOfOrder: 0, sessionsLost: 0, dropped: 0 },
    )
    assert.ok(r.rss.peak > 0 && r.rss.samples > 10, 'the node’s RSS was sampled')
    assert.ok(r.rss.peak < r.rssLimitMb, `RSS peak ${r.rss.peak} MB under ${r.rssLimitMb} MB`)
    assert.ok(r.ok, r.failures.join('; '))
  })
})
