import { useHistory } from "../api/queries";
import { CONTACT_FIELDS, type ContactField, type HistoryItem, changedBy } from "../api/types";
import { Button } from "./Button";
import { FormError, describeError, fieldLabel } from "./ContactFields";

const isField = (name: string): name is ContactField => (CONTACT_FIELDS as readonly string[]).includes(name);

/** What one version changed: "field: old → new" when the previous snapshot is known. */
export function describeChanges(item: HistoryItem, previous: HistoryItem | undefined): string[] {
  if (item.op === "deleted") return ["Deleted"];
  const now = item.contact;
  if (item.op === "created" && now) return CONTACT_FIELDS.map((f) => `${fieldLabel(f)}: ${now[f]}`);
  const before = previous?.contact;
  if (now && before) {
    return CONTACT_FIELDS.filter((f) => now[f] !== before[f]).map(
      (f) => `${fieldLabel(f)}: ${before[f]} → ${now[f]}`,
    );
  }
  return item.changed_fields.map((f) => (now && isField(f) ? `${fieldLabel(f)}: now ${now[f]}` : `${fieldLabel(f)} changed`));
}

const OP_STYLE = {
  created: "bg-green-100 text-green-900",
  updated: "bg-blue-100 text-blue-900",
  deleted: "bg-red-100 text-red-900",
};

/** Every version of one contact, newest first. */
export function HistoryPanel({ id }: { id: number }) {
  const { data, error, isPending, hasNextPage, fetchNextPage, isFetchingNextPage } = useHistory(id);
  if (isPending) return <p className="text-sm text-slate-600">Loading history…</p>;
  if (error) return <FormError message={describeError(error).message} />;

  const items = data.pages.flatMap((p) => p.items);
  return (
    <div className="flex flex-col gap-3">
      <ol className="flex flex-col gap-3" aria-label="Versions" data-testid="history">
        {items.map((item, index) => (
          <li key={item.event_id} className="rounded-md border border-slate-200 bg-white p-3 text-sm" data-testid="history-item">
            <div className="flex flex-wrap items-baseline gap-x-2">
              <span className="font-semibold">Version {item.version}</span>
              <span className={`rounded px-1.5 text-xs font-medium ${OP_STYLE[item.op]}`}>{item.op}</span>
              <span className="text-slate-600" data-testid="changed-by">
                by {changedBy(item)}
              </span>
              <time dateTime={item.at} className="text-slate-600">
                {new Date(item.at).toLocaleString()}
              </time>
            </div>
            <ul className="mt-1 list-none break-words text-slate-800">
              {describeChanges(item, items[index + 1]).map((line) => (
                <li key={line}>{line}</li>
              ))}
            </ul>
          </li>
        ))}
      </ol>
      {hasNextPage && (
        <Button onClick={() => void fetchNextPage()} disabled={isFetchingNextPage}>
          {isFetchingNextPage ? "Loading…" : "Older versions"}
        </Button>
      )}
    </div>
  );
}
