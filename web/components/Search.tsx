import { useState } from 'preact/hooks'
import type { ChatMessage, ChatState } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { previewOf, timeOf } from '../format.ts'
import { useNames } from '../names.ts'

/** Searches the chat's messages on the server (client.search): newest first, with sender and time. */
export function Search({ chat }: { chat: ChatState }) {
  const { client, names } = useApp()
  const [query, setQuery] = useState('')
  const [results, setResults] = useState<ChatMessage[] | null>(null)
  const [error, setError] = useState('')
  const nameOf = useNames(names, [...new Set((results ?? []).map((m) => m.senderId))])
  return (
    <search id="search">
      <form
        onSubmit={(e) => {
          e.preventDefault()
          const q = query.trim()
          if (!q) return
          setError('')
          client.search(chat.id, q).then(setResults, (err: Error) => setError(err.message))
        }}
      >
        <label for="search-query" class="visually-hidden">
          Search this chat
        </label>
        <input
          id="search-query"
          type="search"
          placeholder="Search this chat"
          value={query}
          onInput={(e) => setQuery((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Search</button>
      </form>
      {error && <p role="alert">{error}</p>}
      {results && (
        <ul id="search-results" aria-label="Search results">
          {results.length === 0 && <li class="empty">Nothing found</li>}
          {results.map((m) => (
            <li key={m.seq} data-seq={m.seq}>
              <span class="sender">{nameOf(m.senderId)}</span>{' '}
              <span class="text">{previewOf(m, nameOf)}</span> <time class="time">{timeOf(m.at)}</time>
            </li>
          ))}
        </ul>
      )}
    </search>
  )
}
