import { after, before } from 'node:test'
import { type FerretDb, startFerretDb } from './ferretdb.ts'
import { startTestNode, type TestNode } from './node.ts'

/** The two message stores a node runs on, as the names tests give them in their titles. */
export const STORE_BACKENDS = ['SQLite', 'MongoDB (FerretDB)'] as const
/** One of {@link STORE_BACKENDS}. */
export type StoreBackend = (typeof STORE_BACKENDS)[number]

/** A node on one store: `ferret` is the FerretDB behind it on MongoDB, undefined on SQLite. */
export interface BackendNode {
  node: TestNode
  ferret: FerretDb | undefined
}

/**
 * Starts a node on `backend`: SQLite in its data directory, or MongoDB through a FerretDB of its
 * own (`NATTER_MONGODB_URI`). Stop it with {@link stopBackendNode}. Rejects as startTestNode and
 * startFerretDb do (a process that does not come up), with the FerretDB stopped again.
 */
export async function startBackendNode(backend: StoreBackend): Promise<BackendNode> {
  if (backend === 'SQLite') return { node: await startTestNode(), ferret: undefined }
  const ferret = await startFerretDb()
  try {
    return { node: await startTestNode({ NATTER_MONGODB_URI: ferret.uri }), ferret }
  } catch (err) {
    // Nobody else holds the FerretDB yet to stop it.
    await ferret.stop()
    throw err
  }
}

/** Closes the node, then its FerretDB; either may be undefined (a `before` that failed part way). */
export async function stopBackendNode(b: Partial<BackendNode> | undefined): Promise<void> {
  await b?.node?.close()
  await b?.ferret?.stop()
}

/**
 * Registers the enclosing describe's node:test hooks for a node on `backend`: `before` starts it
 * (before the describe's own `before` hooks, registered later, run), `after` runs `cleanUp` (the
 * test's clients, closed while the node is up) and then stops the node and its FerretDB, even if
 * `cleanUp` rejected.
 * Returns a holder whose `node` throws if read before the node started.
 */
export function useBackendNode(
  backend: StoreBackend,
  cleanUp: () => Promise<void>,
): { readonly node: TestNode } {
  let started: BackendNode | undefined
  before(async () => {
    started = await startBackendNode(backend)
  })
  after(async () => {
    try {
      await cleanUp()
    } finally {
      await stopBackendNode(started)
    }
  })
  return {
    get node(): TestNode {
      if (!started) throw new Error('the node starts in the before hook')
      return started.node
    },
  }
}
