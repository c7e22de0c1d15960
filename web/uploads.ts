import { useEffect, useState } from 'preact/hooks'
import type { ChatState, NatterClient, NatterRequestError } from '../client-sdk/src/index.ts'
import { isImageType, uploadTypeOf } from './attach-types.ts'
import { sayError } from './error-words.ts'

/** A file on its way to the storage, shown at once as a bubble with its progress. */
export interface Upload {
  id: string
  file: File
  name: string
  contentType: string
  /** Pixels, read from the local file (createImageBitmap); null for files, or until read. */
  image: { width: number; height: number } | null
  /** A blob: URL of the local image, shown dimmed until the upload is done. */
  preview: string | null
  sentBytes: number
  totalBytes: number
  /** Why it failed (the upload stays, to retry or remove); null while it goes. */
  error: string | null
  abort: AbortController
}

let counter = 0

/**
 * The uploads of one chat: one per picked file (sent as an image only when its type is an
 * image type and it decodes as one), with progress; cancel aborts the PUT and nothing is sent;
 * a failed one stays to retry. Once stored, the media is sent in a message through the chat's
 * outbox, and the bubble gives way to the message. Kept per chat, not per screen: an upload goes
 * on while another chat is open.
 */
export class ChatUploads {
  readonly #items = new Map<string, Upload>()
  readonly #listeners = new Set<(uploads: Upload[]) => void>()
  readonly #client: NatterClient
  readonly #chat: ChatState

  constructor(client: NatterClient, chat: ChatState) {
    this.#client = client
    this.#chat = chat
    // Removed from the chat (or left it): its uploads could never be sent, so they stop now
    // rather than upload bytes the server then refuses to attach.
    const off = client.on('chat.removed', (r) => {
      if (r.chatId !== chat.id) return
      off()
      for (const id of [...this.#items.keys()]) this.cancel(id)
    })
  }

  get list(): Upload[] {
    return [...this.#items.values()]
  }

  subscribe(f: (uploads: Upload[]) => void): () => void {
    this.#listeners.add(f)
    return () => this.#listeners.delete(f)
  }

  /** Shows the file at once and starts its upload. */
  start(file: File): void {
    const id = `up-${++counter}`
    const contentType = uploadTypeOf(file)
    this.#items.set(id, {
      id,
      file,
      name: file.name || 'file',
      contentType,
      image: null,
      preview: null,
      sentBytes: 0,
      totalBytes: file.size,
      error: null,
      abort: new AbortController(),
    })
    this.#changed()
    if (!isImageType(contentType)) {
      this.retry(id)
      return
    }
    // The bubble takes the image's own shape before a byte is sent; a file that says it is an
    // image but does not decode goes as a file (the server would refuse it as an image).
    createImageBitmap(file).then(
      (bitmap) => {
        const size = { width: bitmap.width, height: bitmap.height }
        bitmap.close()
        this.#update(id, { image: size, preview: URL.createObjectURL(file) })
        this.retry(id)
      },
      () => {
        this.#update(id, { contentType: 'application/octet-stream' })
        this.retry(id)
      },
    )
  }

  /** Uploads the file (again, after a failure). */
  retry(id: string): void {
    const u = this.#items.get(id)
    if (!u) return
    const abort = new AbortController()
    this.#update(id, { abort, error: null, sentBytes: 0 })
    this.#client
      .uploadMedia(u.file, {
        chatId: this.#chat.id,
        contentType: u.contentType,
        name: u.name,
        signal: abort.signal,
        onProgress: (sentBytes, totalBytes) => this.#update(id, { sentBytes, totalBytes }),
      })
      .then(({ mediaId }) => {
        this.#drop(id)
        this.#chat.send({ media: [mediaId] }).sent.catch(() => {})
      })
      .catch((e: NatterRequestError) => {
        if (e.code === 'cancelled') return
        // The server's message names bytes and content types; a person needs the gist.
        const error =
          e.code === 'too_large'
            ? 'This file is larger than the server takes.'
            : e.code === 'unsupported_media_type'
              ? 'This kind of file cannot be sent.'
              : sayError(e)
        this.#update(id, { error })
      })
  }

  /** Aborts the upload (the PUT stops where it is) and removes it: no message is sent. */
  cancel(id: string): void {
    this.#items.get(id)?.abort.abort()
    this.#drop(id)
  }

  #update(id: string, change: Partial<Upload>): void {
    const u = this.#items.get(id)
    if (!u) return
    this.#items.set(id, { ...u, ...change })
    this.#changed()
  }

  #drop(id: string): void {
    const u = this.#items.get(id)
    if (!u) return
    this.#items.delete(id)
    if (u.preview) URL.revokeObjectURL(u.preview)
    this.#changed()
  }

  #changed(): void {
    const list = this.list
    for (const f of this.#listeners) f(list)
  }
}

const byChat = new WeakMap<ChatState, ChatUploads>()
/** Every chat's uploads made in this tab, for the warning before it closes (at most one per chat). */
const stores = new Set<ChatUploads>()

/**
 * Whether a file is still uploading in some chat of this tab: a reload or close would drop it
 * without a trace (its bytes are only in this page's memory), so the page asks first.
 */
export function uploadsGoing(): boolean {
  for (const store of stores) if (store.list.some((u) => u.error === null)) return true
  return false
}

/** The chat's uploads (the same store each time), and a redraw when they change. */
export function useUploads(client: NatterClient, chat: ChatState): { store: ChatUploads; uploads: Upload[] } {
  let store = byChat.get(chat)
  if (!store) {
    store = new ChatUploads(client, chat)
    byChat.set(chat, store)
    stores.add(store)
  }
  const [uploads, setUploads] = useState<Upload[]>(store.list)
  useEffect(() => {
    const off = store.subscribe(setUploads)
    setUploads(store.list)
    return off
  }, [store])
  return { store, uploads }
}
