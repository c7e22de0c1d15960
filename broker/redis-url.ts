import type { RedisOptions } from 'ioredis'

const SENTINEL = /^(rediss?)-sentinel:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)\/([^/?]+)(?:\?(.*))?$/

/**
 * ioredis options from NATTER_REDIS_URL: redis:// and rediss:// as ioredis reads them, and
 * redis-sentinel://[[user]:password@]host:port[,host:port…]/<master name>[?db=N] (rediss-sentinel
 * for TLS to the master) for a Sentinel-managed Redis, which ioredis follows through failovers.
 */
export function redisOptions(url: string): { url?: string; options: RedisOptions } {
  const sentinel = SENTINEL.exec(url)
  if (!sentinel) return { url, options: {} }
  const [, scheme, username, password, hosts = '', name, query] = sentinel
  const db = Number(new URLSearchParams(query ?? '').get('db') ?? 0)
  return {
    options: {
      name,
      sentinels: hosts.split(',').map((h) => {
        const [host = '', port = '26379'] = h.split(':')
        return { host, port: Number(port) }
      }),
      ...(username ? { username: decodeURIComponent(username) } : {}),
      ...(password
        ? { password: decodeURIComponent(password), sentinelPassword: decodeURIComponent(password) }
        : {}),
      ...(db ? { db } : {}),
      ...(scheme === 'rediss' ? { tls: {} } : {}),
    },
  }
}
