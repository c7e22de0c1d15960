import { parseSearchQuery, searchTerms } from '../search-terms.ts'
import type { ChatMessage } from '../timeline.ts'

/**
 * Search in an encrypted chat, on the device (docs/e2ee.md, "Search"): the server holds only
 * ciphertext, so the SDK matches the messages this device decrypted by the rules the server uses
 * for plaintext chats (client-sdk/src/search-terms.ts, the same module): every whole word of the
 * query, the last one as a prefix unless the query ends outside a word; words segmented by
 * Intl.Segmenter and folded for case, width and optional marks; the first 256 distinct words of a
 * message. Each message's terms are computed once and kept while the message object is.
 */
export class LocalSearch {
  /** Terms by message object: a message replaced (a tombstone) is a new object, and its terms go with the old one. */
  readonly #terms = new WeakMap<ChatMessage, ReadonlySet<string>>()

  #termsOf(m: ChatMessage): ReadonlySet<string> {
    let t = this.#terms.get(m)
    if (!t) {
      t = new Set(searchTerms(m.text))
      this.#terms.set(m, t)
    }
    return t
  }

  /**
   * The messages of `messages` that match `query`, newest (highest seq) first, at most `limit`:
   * live text messages that were read (not deleted, not undecryptable, not chat events). A query
   * without words finds nothing, as on the server.
   */
  search(messages: Iterable<ChatMessage>, query: string, limit: number): ChatMessage[] {
    const q = parseSearchQuery(query)
    if (q.whole.length === 0 && q.prefix === null) return []
    const candidates = [...messages]
      .filter((m) => m.kind === 'text' && m.text !== null && m.deletedAt === null && !m.undecryptable)
      .sort((a, b) => b.seq - a.seq)
    const out: ChatMessage[] = []
    for (const m of candidates) {
      if (out.length >= limit) break
      const terms = this.#termsOf(m)
      if (!q.whole.every((w) => terms.has(w))) continue
      const prefix = q.prefix
      if (prefix !== null && !hasTermStartingWith(terms, prefix)) continue
      out.push({ ...m, type: 'message' })
    }
    return out
  }
}

function hasTermStartingWith(terms: ReadonlySet<string>, prefix: string): boolean {
  for (const t of terms) if (t.startsWith(prefix)) return true
  return false
}
