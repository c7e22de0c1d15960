import { useSyncExternalStore } from 'preact/compat'
import { useState } from 'preact/hooks'
import type { ChatState } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'
import { useNames } from '../names.ts'
import { Avatar } from './Avatar.tsx'

/**
 * A group's members with their avatars and roles; admins add and remove, anyone leaves. A user
 * no longer in the group sees the list only.
 */
export function GroupInfo({
  chat,
  removed,
  onError,
}: {
  chat: ChatState
  removed: boolean
  onError: (message: string) => void
}) {
  const { me, names } = useApp()
  const all = useSyncExternalStore(chat.subscribe, chat.getSnapshot).members
  // Once out, the list is the last one known, without the user.
  const members = removed ? all.filter((m) => m.userId !== me) : all
  const [add, setAdd] = useState('')
  const nameOf = useNames(
    names,
    members.map((m) => m.userId),
  )
  const amAdmin = members.some((m) => m.userId === me && m.role === 'admin')
  const fail = (e: Error) => onError(e.message)
  return (
    <div id="group-info">
      {removed && <p class="members-note">Members when you were removed:</p>}
      <ul id="members" aria-label="Members">
        {members.map((m) => (
          <li key={m.userId} data-user-id={m.userId}>
            <Avatar userId={m.userId} size={24} />
            <span class="member-name">
              {nameOf(m.userId)}
              {m.userId === me ? ' (you)' : ''}
            </span>
            {m.role === 'admin' && <span class="role">admin</span>}
            {amAdmin && m.userId !== me && !removed && (
              <button
                type="button"
                class="remove-member"
                aria-label={`Remove ${nameOf(m.userId)}`}
                onClick={() => chat.removeMember(m.userId).catch(fail)}
              >
                Remove
              </button>
            )}
          </li>
        ))}
      </ul>
      {amAdmin && !removed && (
        <form
          id="add-member"
          onSubmit={(e) => {
            e.preventDefault()
            const ids = add
              .split(/[\s,]+/)
              .map((s) => s.trim())
              .filter(Boolean)
            if (!ids.length) return
            chat.addMembers(ids).then(() => setAdd(''), fail)
          }}
        >
          <label for="add-user">Add people</label>
          <input
            id="add-user"
            value={add}
            placeholder="names, comma separated"
            onInput={(e) => setAdd((e.target as HTMLInputElement).value)}
          />
          <button type="submit">Add</button>
        </form>
      )}
      {!removed && (
        <button type="button" id="leave" onClick={() => chat.leave().catch(fail)}>
          Leave group
        </button>
      )}
    </div>
  )
}
