import { useEffect, useRef, useState } from 'preact/hooks'
import { useBusy } from '../busy.ts'
import { useApp } from '../context.ts'
import { sayError } from '../error-words.ts'
import { useName } from '../names.ts'
import { Avatar } from './Avatar.tsx'
import { ChatList } from './ChatList.tsx'
import { GROUP_NAME_MAX } from './GroupInfo.tsx'
import { Lock } from './Lock.tsx'
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
  const [confirmSignOut, setConfirmSignOut] = useState(false)
  const [peer, setPeer] = useState('')
  const [peerEncrypted, setPeerEncrypted] = useState(false)
  const [group, setGroup] = useState<{ name: string; members: string; encrypted: boolean } | null>(null)
  const { busy, run } = useBusy()
  const fail = (e: unknown) => setError(sayError(e))
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
        <button
          type="button"
          id="sign-out"
          aria-expanded={confirmSignOut}
          onClick={() => {
            // Signing out deletes this device's MLS keys (docs/e2ee.md §13): said before, not after.
            if (client.chats().some((c) => c.encrypted)) setConfirmSignOut(!confirmSignOut)
            else onSignOut()
          }}
        >
          Sign out
        </button>
      </div>
      {confirmSignOut && (
        <SignOutWarning
          encryptedChats={client.chats().filter((c) => c.encrypted).length}
          onSignOut={onSignOut}
          onCancel={() => {
            setConfirmSignOut(false)
            document.getElementById('sign-out')?.focus()
          }}
        />
      )}
      {showProfile && <ProfilePanel onClose={() => setShowProfile(false)} />}
      <form
        id="new-chat"
        onSubmit={(e) => {
          e.preventDefault()
          const who = peer.trim()
          if (!who) return
          setError('')
          run('direct', async () => {
            const chat = await client.direct(who, peerEncrypted ? { encrypted: true } : {})
            setPeer('')
            setPeerEncrypted(false)
            await client.chat(chat.id).refresh()
            onOpen(chat.id)
          })?.catch(fail)
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
        <button type="submit" disabled={busy('direct')}>
          Start
        </button>
        <div class="e2ee-choice">
          <input
            id="with-encrypted"
            type="checkbox"
            checked={peerEncrypted}
            aria-describedby={peerEncrypted ? 'with-encrypted-help' : undefined}
            onChange={(e) => setPeerEncrypted((e.target as HTMLInputElement).checked)}
          />
          <label for="with-encrypted">
            <Lock label={null} size={12} /> End-to-end encrypted
          </label>
          {peerEncrypted && (
            <p id="with-encrypted-help" class="hint">
              A chat of its own beside the plain one, that only your and their devices can read: the server
              cannot. Search runs on this device.
            </p>
          )}
        </div>
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
            run('create', () =>
              client.createGroup(group.name.trim(), members, group.encrypted ? { encrypted: true } : {}),
            )?.then((chat) => {
              setGroup(null)
              onOpen(chat.id)
            }, fail)
          }}
        >
          <label for="group-name">Group name</label>
          <input
            id="group-name"
            required
            maxLength={GROUP_NAME_MAX}
            value={group.name}
            onInput={(e) => setGroup({ ...group, name: (e.target as HTMLInputElement).value })}
          />
          <label for="group-members">Members (names, comma separated)</label>
          <input
            id="group-members"
            value={group.members}
            onInput={(e) => setGroup({ ...group, members: (e.target as HTMLInputElement).value })}
          />
          <div class="e2ee-choice">
            <input
              id="group-encrypted"
              type="checkbox"
              checked={group.encrypted}
              aria-describedby="group-encrypted-help"
              onChange={(e) => setGroup({ ...group, encrypted: (e.target as HTMLInputElement).checked })}
            />
            <label for="group-encrypted">
              <Lock label={null} size={12} /> End-to-end encrypted
            </label>
            <p id="group-encrypted-help" class="hint">
              Only the members’ devices can read it: the server cannot. Search runs on this device. People
              added later cannot read what was sent before they joined. Cannot be changed later.
            </p>
          </div>
          <div class="buttons">
            <button type="submit" disabled={busy('create')}>
              Create group
            </button>
            <button type="button" onClick={() => setGroup(null)}>
              Cancel
            </button>
          </div>
        </form>
      ) : (
        <button
          type="button"
          id="new-group-button"
          onClick={() => setGroup({ name: '', members: '', encrypted: false })}
        >
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

/**
 * What signing out does to end-to-end encrypted chats, asked before it is done: the tab's device
 * is revoked and its MLS keys and decrypted messages deleted (web/session.ts `endSession`), and
 * a sign-in again is a new device, which reads only what is sent after it is added (docs/e2ee.md
 * §6). Escape or Cancel keeps the user signed in.
 */
function SignOutWarning({
  encryptedChats,
  onSignOut,
  onCancel,
}: {
  encryptedChats: number
  onSignOut: () => void
  onCancel: () => void
}) {
  const cancel = useRef<HTMLButtonElement>(null)
  useEffect(() => cancel.current?.focus(), [])
  return (
    <div
      id="sign-out-warning"
      role="alertdialog"
      aria-labelledby="sign-out-title"
      aria-describedby="sign-out-text"
      onKeyDown={(e) => {
        if (e.key === 'Escape') onCancel()
      }}
    >
      <p id="sign-out-title">
        <strong>Sign out of this browser?</strong>
      </p>
      <p id="sign-out-text" class="hint">
        {`This deletes the keys of your ${encryptedChats === 1 ? 'encrypted chat' : `${encryptedChats} encrypted chats`} here, and the messages read with them: this browser cannot show them again. Signed in again, it is a new device that reads only what is sent after another device of yours, or someone in the chat, adds it. Chats that are not encrypted stay as they are.`}
      </p>
      <div class="sign-out-actions">
        <button type="button" ref={cancel} onClick={onCancel}>
          Stay signed in
        </button>
        <button type="button" id="sign-out-confirm" onClick={onSignOut}>
          Sign out
        </button>
      </div>
    </div>
  )
}
