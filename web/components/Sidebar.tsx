import { useState } from 'preact/hooks'
import { useApp } from '../context.ts'
import { useName } from '../names.ts'
import { ChatList } from './ChatList.tsx'

/** Who is signed in (and their display name), new chats and groups, and the chat list. */
export function Sidebar({
  current,
  onOpen,
  onSignOut,
}: {
  current: string | null
  onOpen: (chatId: string) => void
  onSignOut: () => void
}) {
  const { client, me, names } = useApp()
  const myName = useName(names, me)
  const [error, setError] = useState('')
  const [displayName, setDisplayName] = useState('')
  const [peer, setPeer] = useState('')
  const [group, setGroup] = useState<{ name: string; members: string } | null>(null)
  const fail = (e: Error) => setError(e.message)
  return (
    <aside id="sidebar">
      <div class="me-row">
        <div id="me">{`Signed in as ${names.hasName(me) ? `${myName} (${me})` : me}`}</div>
        <button type="button" id="sign-out" onClick={onSignOut}>
          Sign out
        </button>
      </div>
      <form
        id="profile"
        onSubmit={(e) => {
          e.preventDefault()
          const n = displayName.trim()
          client.setProfile({ displayName: n === '' ? null : n }).then((p) => {
            setDisplayName('')
            names.set(p)
          }, fail)
        }}
      >
        <label for="display-name" class="visually-hidden">
          Your display name
        </label>
        <input
          id="display-name"
          placeholder="Your display name"
          autocomplete="nickname"
          value={displayName}
          onInput={(e) => setDisplayName((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Save</button>
      </form>
      <form
        id="new-chat"
        onSubmit={(e) => {
          e.preventDefault()
          const who = peer.trim()
          if (!who) return
          setError('')
          client.direct(who).then(async (chat) => {
            setPeer('')
            await client.chat(chat.id).refresh()
            onOpen(chat.id)
          }, fail)
        }}
      >
        <label for="with" class="visually-hidden">
          Chat with (a user name)
        </label>
        <input
          id="with"
          placeholder="Chat with… (a name)"
          required
          value={peer}
          onInput={(e) => setPeer((e.target as HTMLInputElement).value)}
        />
        <button type="submit">Start</button>
      </form>
      {group ? (
        <form
          id="new-group"
          onSubmit={(e) => {
            e.preventDefault()
            const members = group.members
              .split(/[\s,]+/)
              .map((s) => s.trim())
              .filter(Boolean)
            setError('')
            client.createGroup(group.name.trim(), members).then((chat) => {
              setGroup(null)
              onOpen(chat.id)
            }, fail)
          }}
        >
          <label for="group-name">Group name</label>
          <input
            id="group-name"
            required
            value={group.name}
            onInput={(e) => setGroup({ ...group, name: (e.target as HTMLInputElement).value })}
          />
          <label for="group-members">Members (names, comma separated)</label>
          <input
            id="group-members"
            value={group.members}
            onInput={(e) => setGroup({ ...group, members: (e.target as HTMLInputElement).value })}
          />
          <div class="buttons">
            <button type="submit">Create group</button>
            <button type="button" onClick={() => setGroup(null)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <button type="button" id="new-group-button" onClick={() => setGroup({ name: '', members: '' })}>
          New group
        </button>
      )}
      {error && (
        <p class="error" role="alert">
          {error}
        </p>
      )}
      <ChatList current={current} onOpen={onOpen} />
    </aside>
  )
}
