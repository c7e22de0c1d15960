/** How services hand a payload to the broker: JSON on a topic, QoS 1 unless said otherwise. */
export type Publish = (topic: string, body: unknown, o?: { qos?: 0 | 1; retain?: boolean }) => Promise<void>
