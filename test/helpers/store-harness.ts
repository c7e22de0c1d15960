import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { startFerretDb } from './ferretdb.ts'

interface Closable {
  close(): Promise<void>
}

export interface Harness<S> {
  store: S
  /** Closes the store and opens it again on the same data, to show what survives. */
  reopen(): Promise<S>
  cleanup(): Promise<void>
}

function harness<S extends Closable>(
  first: S,
  open: () => Promise<S>,
  dispose: () => Promise<void> | void,
): Harness<S> {
  let store = first
  return {
    store,
    reopen: async () => {
      await store.close()
      store = await open()
      return store
    },
    cleanup: async () => {
      try {
        await store.close()
      } finally {
        await dispose()
      }
    },
  }
}

/** A store on a SQLite file in a fresh directory. */
export async function sqliteHarness<S extends Closable>(
  file: string,
  open: (path: string) => S,
): Promise<Harness<S>> {
  const dir = mkdtempSync(join(tmpdir(), 'natter-sqlite-'))
  const path = join(dir, file)
  return harness(
    open(path),
    async () => open(path),
    () => rmSync(dir, { recursive: true, force: true }),
  )
}

/** A store on a real FerretDB of its own. */
export async function mongoHarness<S extends Closable>(
  open: (uri: string) => Promise<S>,
): Promise<Harness<S>> {
  const ferret = await startFerretDb()
  return harness(
    await open(ferret.uri),
    () => open(ferret.uri),
    () => ferret.stop(),
  )
}
