import { mkdir, readFile, rename, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { MlsDeviceRecord, MlsStorage } from './storage.ts'

/**
 * A device's MLS record in one JSON file, `<dir>/<userId>~<deviceId>.mls.json` (mode 0600), for
 * Node. Each save writes a temporary file and renames it over the old one, so a crash leaves the
 * old record or the new one, never a mix (rename is atomic on POSIX file systems). The file holds
 * private keys in the clear: the directory is the app's to protect (docs/e2ee.md).
 */
export class FileMlsStorage implements MlsStorage {
  readonly dir: string
  readonly path: string
  #writes: Promise<void> = Promise.resolve()

  /** `dir`: a directory the app names (created if missing); `userId`/`deviceId` name the file. */
  constructor(dir: string, userId: string, deviceId: string) {
    this.dir = dir
    this.path = join(dir, `${encodeURIComponent(userId)}~${encodeURIComponent(deviceId)}.mls.json`)
  }

  /** The record, or null when the file does not exist. Rejects when it exists and is not a record. */
  async load(): Promise<MlsDeviceRecord | null> {
    let text: string
    try {
      text = await readFile(this.path, 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return null
      throw err
    }
    const record = JSON.parse(text) as MlsDeviceRecord
    if (record.version !== 1) throw new Error(`${this.path}: not an MLS device record of version 1`)
    return record
  }

  /** Writes the record atomically (temp file + rename); saves run one after another. */
  save(record: MlsDeviceRecord): Promise<void> {
    const text = JSON.stringify(record)
    const write = this.#writes.then(async () => {
      await mkdir(this.dir, { recursive: true, mode: 0o700 })
      const temp = `${this.path}.${process.pid}.tmp`
      await writeFile(temp, text, { mode: 0o600 })
      await rename(temp, this.path)
    })
    this.#writes = write.catch(() => {})
    return write
  }
}
