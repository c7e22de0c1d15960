/**
 * The live memory of a Node target, read through its inspector (the target runs with
 * NODE_OPTIONS=--inspect=127.0.0.1:<port>): a session over the Chrome DevTools Protocol forces
 * two full garbage collections, reads process.memoryUsage(), and is closed again, so no session
 * stays attached while the target is measured for anything else.
 */

export interface MemoryUsage {
  rss: number
  heapTotal: number
  heapUsed: number
  /** C++ memory bound to JavaScript objects; includes arrayBuffers. */
  external: number
  arrayBuffers: number
}

/** The target's memory after two forced full GCs. */
export async function memoryAfterGc(port: number): Promise<MemoryUsage> {
  const list = (await (await fetch(`http://127.0.0.1:${port}/json/list`)).json()) as Array<{
    webSocketDebuggerUrl?: string
  }>
  const url = list.find((t) => t.webSocketDebuggerUrl)?.webSocketDebuggerUrl
  if (!url) throw new Error(`no inspector target on port ${port}`)
  const ws = new WebSocket(url)
  await new Promise<void>((resolve, reject) => {
    ws.addEventListener('open', () => resolve(), { once: true })
    ws.addEventListener('error', () => reject(new Error(`inspector on port ${port}: cannot connect`)), {
      once: true,
    })
  })
  const pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: Error) => void }>()
  ws.addEventListener('message', (e) => {
    const m = JSON.parse(String(e.data)) as { id?: number; result?: unknown; error?: { message: string } }
    const p = m.id === undefined ? undefined : pending.get(m.id)
    if (!p) return
    pending.delete(m.id as number)
    if (m.error) p.reject(new Error(m.error.message))
    else p.resolve(m.result)
  })
  let id = 0
  const call = <T>(method: string, params: Record<string, unknown> = {}) =>
    new Promise<T>((resolve, reject) => {
      id++
      pending.set(id, { resolve: resolve as (r: unknown) => void, reject })
      ws.send(JSON.stringify({ id, method, params }))
    })
  try {
    await call('HeapProfiler.collectGarbage')
    await call('HeapProfiler.collectGarbage')
    const { result } = await call<{ result: { value?: string } }>('Runtime.evaluate', {
      expression: 'JSON.stringify(process.memoryUsage())',
      returnByValue: true,
    })
    return JSON.parse(result.value as string) as MemoryUsage
  } finally {
    await new Promise<void>((resolve) => {
      ws.addEventListener('close', () => resolve(), { once: true })
      ws.close()
    })
  }
}
