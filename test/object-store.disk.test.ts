import { mkdtempSync, rmSync } from 'node:fs'
import { createServer } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DISK_OBJECT_PATH, DiskObjectStore } from '../services/media/disk-object-store.ts'
import { objectStoreContract } from './contract/object-store.contract.ts'

objectStoreContract('disk', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'natter-disk-media-'))
  let store: DiskObjectStore | undefined
  const server = createServer((req, res) => {
    if (store && req.url?.startsWith(DISK_OBJECT_PATH)) {
      store.serve(req, res).catch(() => res.destroy())
    } else res.writeHead(404).end()
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  store = new DiskObjectStore({ dir, baseUrl: `http://127.0.0.1:${port}` })
  const s = store
  return {
    store: s,
    cleanup: async () => {
      await s.close()
      server.closeAllConnections()
      await new Promise<void>((resolve) => server.close(() => resolve()))
      rmSync(dir, { recursive: true, force: true })
    },
  }
})
