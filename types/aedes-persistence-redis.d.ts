// aedes-persistence-redis ships no types. Natter passes it an ioredis connection and hands the
// result to aedes; only the method Natter wraps is typed.
declare module 'aedes-persistence-redis' {
  import type { Redis } from 'ioredis'
  export interface Subscription {
    topic: string
    qos: number
  }
  export interface RedisPersistence {
    /** Returns a promise when called without a callback, as aedes 1.x calls it. */
    addSubscriptions(client: { id: string }, subs: Subscription[]): Promise<void>
  }
  export default function aedesPersistenceRedis(opts: {
    conn: Redis
    maxSessionDelivery?: number
  }): RedisPersistence
}
