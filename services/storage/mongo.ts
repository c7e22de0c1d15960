import { type Collection, type Document, type IndexDescription, MongoClient, MongoServerError } from 'mongodb'

const DUPLICATE_KEY = 11000

export const isDuplicateKey = (err: unknown): boolean =>
  err instanceof MongoServerError && err.code === DUPLICATE_KEY

/**
 * Every write waits for the journal, so an acknowledged write survives a crash of the server.
 * The server is checked by polling every 2 s: after FerretDB was stopped and started again, a
 * node's driver (streaming checks, every 10 s) kept failing server selection for minutes in
 * one fault run of three (test/faults, mongo-stop-5s).
 */
export async function connectMongo(uri: string): Promise<MongoClient> {
  const client = new MongoClient(uri, {
    writeConcern: { w: 'majority', journal: true },
    serverMonitoringMode: 'poll',
    heartbeatFrequencyMS: 2000,
  })
  await client.connect()
  return client
}

/**
 * Creates the indexes that are missing, one command each: FerretDB v1 panics on a
 * createIndexes that names several indexes which already exist.
 */
export async function ensureIndexes<T extends Document>(
  collection: Collection<T>,
  specs: IndexDescription[],
): Promise<void> {
  const listed = await collection
    .listIndexes()
    .toArray()
    .catch(() => [])
  const existing = new Set(listed.map((i) => i.name as string))
  for (const spec of specs) {
    if (!existing.has(spec.name as string)) await collection.createIndexes([spec])
  }
}
