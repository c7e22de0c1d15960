import { createServer } from 'node:net'

/**
 * A port free right now, for servers that cannot report one they picked themselves (FerretDB,
 * mosquitto). Another process could take it before they bind; callers retry or fail loudly.
 */
export async function freePort(): Promise<number> {
  const srv = createServer()
  await new Promise<void>((resolve) => srv.listen(0, '127.0.0.1', resolve))
  const { port } = srv.address() as { port: number }
  await new Promise<void>((resolve) => srv.close(() => resolve()))
  return port
}
