import assert from 'node:assert/strict'
import { describe, it, mock } from 'node:test'
import type { Client } from 'aedes'
import { Sessions } from '../broker/sessions.ts'

const who = { userId: 'alice', deviceId: 'phone', clientId: 'alice/phone' } as never

describe('Sessions', () => {
  it('ends a session whose socket closed before aedes registered the client', () => {
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 })
    try {
      const expired: Client[] = []
      const sessions = new Sessions((c) => expired.push(c))
      const gone = { closed: false } as { closed: boolean } & Client
      const ready = { closed: false } as { closed: boolean } & Client
      sessions.start(gone, { who, tokenExpiresAt: Date.now() + 3_600_000 })
      sessions.start(ready, { who, tokenExpiresAt: Date.now() + 3_600_000 })
      sessions.ready(ready)
      // Closed during the CONNECT: aedes sends no clientDisconnect for it.
      gone.closed = true
      mock.timers.tick(1000)
      assert.equal(sessions.get(gone), undefined)
      assert.ok(sessions.get(ready))
      assert.deepEqual(expired, [])
      // A registered client is ended by clientDisconnect, not by the sweep.
      ready.closed = true
      mock.timers.tick(1000)
      assert.ok(sessions.get(ready))
      sessions.end(ready)
      assert.equal(sessions.get(ready), undefined)
    } finally {
      mock.timers.reset()
    }
  })

  it('closes a connection once its token expires', () => {
    mock.timers.enable({ apis: ['setInterval', 'Date'], now: 1_000_000 })
    try {
      const expired: Client[] = []
      const sessions = new Sessions((c) => expired.push(c))
      const client = { closed: false } as Client
      sessions.start(client, { who, tokenExpiresAt: Date.now() + 2_500 })
      sessions.ready(client)
      mock.timers.tick(2000)
      assert.deepEqual(expired, [])
      mock.timers.tick(2000)
      assert.deepEqual(expired, [client])
    } finally {
      mock.timers.reset()
    }
  })
})
