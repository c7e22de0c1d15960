import { appendFile, mkdir, readFile, rename, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { ChatMessage } from '../timeline.ts'
import type { MlsDeviceRecord, MlsStorage } from './storage.ts'

/**
 * A device's MLS record in one JSON file, `<dir>/<userId>~<deviceId>.mls.json` (mode 0600), for
 * Node. Each save writes a temporary file and renames it over the old one, so a crash leaves the
 * old record or the new one, never a mix (rename is atomic on POSIX file systems). Messages read
 * in encrypted chats go to `<dir>/<userId>~<deviceId>.messages/<chatId>.jsonl`, one JSON line
 * appended per message (a later line of the same seq replaces an earlier one; a line a crash cut
 * short is skipped on load). Both hold secrets in the clear (keys, message text): the directory
 * is the app's to protect (docs/e2ee.md).
 */
export class FileMlsStorage implements MlsStorage {
  readonly dir: string
  readonly path: string
  /** The directory of the messages read, one file per chat. */
  readonly messagesDir: string
  #writes: Promise<void> = Promise.resolve()

  /** `dir`: a directory the app names (created if missing); `userId`/`deviceId` name the file. */
  constructor(dir: string, userId: string, deviceId: string) {
    this.dir = dir
    const base = `${encodeURIComponent(userId)}~${encodeURIComponent(deviceId)}`
    this.path = join(dir, `${base}.mls.json`)
    this.messagesDir = join(dir, `${base}.messages`)
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

  #messagesOf(chatId: string): string {
    return join(this.messagesDir, `${encodeURIComponent(chatId)}.jsonl`)
  }

  /** Appends the message's line to its chat's file (after the saves before). */
  saveMessage(m: ChatMessage): Promise<void> {
    const line = `${JSON.stringify(m)}\n`
    const write = this.#writes.then(async () => {
      await mkdir(this.messagesDir, { recursive: true, mode: 0o700 })
      await appendFile(this.#messagesOf(m.chatId), line, { mode: 0o600 })
    })
    this.#writes = write.catch(() => {})
    return write
  }

  /** The chat's messages, each seq once (the last line of it); none when the file does not exist. */
  async loadMessages(chatId: string): Promise<ChatMessage[]> {
    let text: string
    try {
      text = await readFile(this.#messagesOf(chatId), 'utf8')
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return []
      throw err
    }
    const bySeq = new Map<number, ChatMessage>()
    for (const line of text.split('\n')) {
      if (!line) continue
      try {
        const m = JSON.parse(line) as ChatMessage
        bySeq.set(m.seq, m)
      } catch {
        // The last line of a write a crash cut short.
      }
    }
    return [...bySeq.values()]
  }

  dropMessages(chatId: string): Promise<void> {
    const drop = this.#writes.then(() => rm(this.#messagesOf(chatId), { force: true }))
    this.#writes = drop.catch(() => {})
    return drop
  }
}
