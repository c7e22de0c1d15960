import { useState } from 'preact/hooks'
import { useApp } from '../context.ts'
import { useName } from '../names.ts'
import { Avatar } from './Avatar.tsx'
import { ChatList } from './ChatList.tsx'
import { ProfilePanel } from './ProfilePanel.tsx'

/** Who is signed in (their avatar and display name, the profile panel), new chats and groups, and the chat list. */
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
  const [showProfile, setShowProfile] = useState(false)
  const [peer, setPeer] = useState('')
  const [group, setGroup] = useState<{ name: string; members: string } | null>(null)
  const fail = (e: Error) => setError(e.message)
  return (
    <aside id="sidebar">
      <div class="me-row">
        <button
          type="button"
          id="profile-button"
          aria-expanded={showProfile}
          aria-controls="profile-panel"
          title="Your profile"
          onClick={() => setShowProfile(!showProfile)}
        >
          <Avatar userId={me} size={32} />
          <span id="me">{`Signed in as ${names.hasName(me) ? `${myName} (${me})` : me}`}</span>
        </button>
        <button type="button" id="sign-out" onClick={onSignOut}>
          Sign out
        </button>
      </div>
      {showProfile && <ProfilePanel onClose={() => setShowProfile(false)} />}
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
