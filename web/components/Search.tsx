import { useLayoutEffect, useRef, useState } from 'preact/hooks'
import type { ChatMessage, ChatState } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { sayError } from '../error-words.ts'
import { previewOf, timeOf } from '../format.ts'
import { useNames } from '../names.ts'

/**
 * Searches the chat's messages (client.search: on the server, or in an encrypted chat on this
 * device, over what it decrypted; docs/e2ee.md): newest first, with sender and
 * time. A result, clicked or picked with Enter, jumps to the message (onJump). Keyboard: the
 * field takes the focus, ArrowDown enters the results, ArrowUp and ArrowDown move in them,
 * Escape closes.
 */
export function Search({
  chat,
  onJump,
  onClose,
}: {
  chat: ChatState
  onJump: (seq: number) => void
  onClose: () => void
}) {
  const { client, names } = useApp()
  const [query, setQuery] = useState('')
  const [results, setResults] = useState<ChatMessage[] | null>(null)
  const [error, setError] = useState('')
  const field = useRef<HTMLInputElement>(null)
  const list = useRef<HTMLUListElement>(null)
  const nameOf = useNames(names, [...new Set((results ?? []).map((m) => m.senderId))])
  useLayoutEffect(() => field.current?.focus(), [])
  const buttons = () => [...(list.current?.querySelectorAll<HTMLButtonElement>('button.result') ?? [])]
  const onKeyDown = (e: KeyboardEvent) => {
    if (e.key === 'Escape') {
      e.preventDefault()
      onClose()
      return
    }
    if (e.key !== 'ArrowDown' && e.key !== 'ArrowUp') return
    const all = buttons()
    if (!all.length) return
    e.preventDefault()
    const at = all.indexOf(document.activeElement as HTMLButtonElement)
    const next = e.key === 'ArrowDown' ? Math.min(at + 1, all.length - 1) : at - 1
    if (next < 0) field.current?.focus()
    else all[next]?.focus()
  }
  return (
    <search id="search" onKeyDown={onKeyDown}>
      <form
        onSubmit={(e) => {
          e.preventDefault()
          const q = query.trim()
          if (!q) return
          setError('')
          client.search(chat.id, q).then(setResults, (err: Error) => setError(sayError(err)))
        }}
      >
        <label for="search-query" class="visually-hidden">
          Search this chat
        </label>
        <input
          id="search-query"
          ref={field}
          type="search"
          placeholder="Search this chat"
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Search</button>
      </form>
      {chat.encrypted && (
        <p id="search-local" class="hint">
          Searched on this device: the server cannot read this chat. Messages sent before this device joined
          are not included.
        </p>
      )}
      {error && <p role="alert">{error}</p>}
      {results && (
        <>
          <p class="visually-hidden" role="status">
            {results.length === 0 ? 'Nothing found' : `${results.length} found`}
          </p>
          <ul id="search-results" ref={list} aria-label="Search results">
            {results.length === 0 && <li class="empty">Nothing found</li>}
            {results.map((m) => (
              <li key={m.seq} data-seq={m.seq}>
                <button type="button" class="result" onClick={() => onJump(m.seq)}>
                  <span class="sender">{nameOf(m.senderId)}</span>{' '}
                  <span class="text">{previewOf(m, nameOf)}</span> <time class="time">{timeOf(m.at)}</time>
                </button>
              </li>
            ))}
          </ul>
        </>
      )}
    </search>
  )
}
