import type { LiveStatus } from "../live/useLiveSocket";

const LOOK: Record<LiveStatus, { label: string; dot: string }> = {
  connecting: { label: "Connecting…", dot: "bg-slate-400" },
  live: { label: "Live", dot: "bg-green-600" },
  reconnecting: { label: "Reconnecting…", dot: "bg-amber-500 animate-pulse" },
  offline: { label: "Offline — retrying", dot: "bg-red-600" },
  "signed-out": { label: "Paused — sign in", dot: "bg-slate-400" },
};

export function ConnectionIndicator({ status }: { status: LiveStatus }) {
  const { label, dot } = LOOK[status];
  return (
    <p
      role="status"
      aria-live="polite"
      data-testid="connection-status"
      data-status={status}
      className="inline-flex items-center gap-2 rounded-full border border-slate-300 bg-white px-3 py-1 text-sm"
    >
      <span aria-hidden="true" className={`size-2.5 rounded-full ${dot}`} />
      {label}
    </p>
  );
}
