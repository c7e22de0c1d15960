import { useEffect, useState } from 'preact/hooks'
import type { ConnectionState } from '../../client-sdk/src/index.ts'
import { useApp } from '../context.ts'

type Shown = ConnectionState | 'offline'

const WORDS: Record<Shown, string> = {
  connecting: 'Connecting…',
  connected: 'Connected',
  reconnecting: 'Reconnecting… messages you send wait and go out once back',
  closed: 'Disconnected',
  offline: 'Offline: messages you send wait and go out once back online',
}

/**
 * The connection as it is: the client's state, and offline as soon as the browser says so (a
 * network gone silent without that event is noticed by the 2 s keep-alive ping, within 5 s).
 */
export function Banner() {
  const { client } = useApp()
  const [state, setState] = useState<ConnectionState>(client.state)
  const [online, setOnline] = useState(navigator.onLine)
  useEffect(() => {
    const off = client.on('state', setState)
    setState(client.state)
    setOnline(navigator.onLine)
    const up = () => setOnline(true)
    const down = () => {
      setOnline(false)
      // The socket may not notice for a while: drop it, the client reconnects when it can.
      ;(client.mqtt.stream as { destroy?: () => void } | undefined)?.destroy?.()
    }
    addEventListener('online', up)
    addEventListener('offline', down)
    return () => {
      off()
      removeEventListener('online', up)
      removeEventListener('offline', down)
    }
  }, [client])
  const shown: Shown = online ? state : 'offline'
  return (
    <div id="connection" data-state={shown} role="status">
      {WORDS[shown]}
    </div>
  )
}
