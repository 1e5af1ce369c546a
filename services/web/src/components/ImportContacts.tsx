import { useEffect, useState } from "react";
import { api } from "../api/client";
import type { ImportJob, ImportProgress } from "../api/types";
import type { SocketLike } from "../live/useLiveSocket";
import { FormError, describeError } from "./ContactFields";

/** The rejected rows listed on the page; the rest are counted. */
const SHOWN_ERRORS = 200;
const RECONNECT_MS = 2_000;

/** What the API reads a file as: vCard by its name or type, CSV otherwise. */
export function mediaTypeOf(file: File): string {
  return /\.(vcf|vcard)$/i.test(file.name) || /vcard|directory/i.test(file.type) ? "text/vcard" : "text/csv";
}

/** The later of two states of one job: a read that set out before a push may arrive after it. */
function later(current: ImportJob | null, next: ImportJob): ImportJob {
  if (!current || current.status === "running" && next.status !== "running") return next;
  const done = (job: ImportJob) => job.created + job.rejected;
  return next.status === current.status && done(next) >= done(current) && next.rows >= current.rows ? next : current;
}

function wsUrl(): string {
  return `${window.location.protocol === "https:" ? "wss:" : "ws:"}//${window.location.host}/ws`;
}

const openSocket = (url: string): SocketLike => new WebSocket(url);

interface Props {
  connect?: (url: string) => SocketLike;
}

/**
 * Upload a CSV or vCard file as an import job, and follow it: the notifier pushes its progress to the
 * importer's connections (a socket of this component's own while the job runs), and the whole job, with
 * its rejected rows, is read when the socket opens (what happened before) and when the job ends.
 */
export function ImportContacts({ connect = openSocket }: Props) {
  const [job, setJob] = useState<ImportJob | null>(null);
  const [error, setError] = useState<unknown>(null);
  const [uploading, setUploading] = useState(false);
  const [attempt, setAttempt] = useState(0);
  const running = job?.status === "running" ? job.id : null;

  useEffect(() => {
    if (running === null) return;
    let disposed = false;
    let retry: ReturnType<typeof setTimeout> | undefined;
    const refresh = () =>
      api.importJob(running).then(
        (latest) => !disposed && setJob((current) => later(current, latest)),
        () => {},
      );
    const socket = connect(wsUrl());
    socket.onopen = () => void refresh();
    socket.onmessage = ({ data }) => {
      if (typeof data !== "string") return;
      const message = JSON.parse(data) as { type: string } & Partial<ImportProgress>;
      if (message.type !== "import" || message.id !== running) return;
      if (message.status === "running") {
        const { rows = 0, created = 0, rejected = 0 } = message;
        setJob((current) => current && later(current, { ...current, rows, created, rejected }));
      } else void refresh();
    };
    socket.onclose = () => {
      if (!disposed) retry = setTimeout(() => setAttempt((n) => n + 1), RECONNECT_MS);
    };
    return () => {
      disposed = true;
      clearTimeout(retry);
      socket.close();
    };
  }, [running, attempt, connect]);

  const upload = async (file: File) => {
    setError(null);
    setUploading(true);
    try {
      setJob(await api.importFile(file, mediaTypeOf(file)));
    } catch (failure) {
      setError(failure);
    } finally {
      setUploading(false);
    }
  };

  const processed = job ? job.created + job.rejected : 0;
  return (
    <section aria-label="Import contacts" className="flex flex-col gap-2">
      <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
        Import contacts (CSV or vCard)
        <input
          type="file"
          accept=".csv,.vcf,.vcard,text/csv,text/vcard"
          disabled={uploading || running !== null}
          onChange={(e) => {
            const file = e.target.files?.[0];
            e.target.value = "";
            if (file) void upload(file);
          }}
          className="text-sm font-normal"
        />
      </label>
      <FormError message={error ? `Could not import: ${describeError(error).message}` : null} />
      {job && (
        <div role="status" className="flex flex-col gap-1 text-sm" data-testid="import-status">
          <progress
            aria-label="Import progress"
            max={job.rows || 1}
            value={job.status === "running" ? processed : job.rows || 1}
            className="w-full"
          />
          <p>
            {job.status === "running" && (job.rows ? `Importing: ${processed} of ${job.rows} rows` : "Reading the file…")}
            {job.status === "done" && `Import done: ${job.rows} rows`}
            {job.status === "failed" && "Import failed: the file could not be read whole"}
            {` — ${job.created} imported, ${job.rejected} rejected.`}
          </p>
        </div>
      )}
      {job && job.status !== "running" && job.errors.length > 0 && (
        <table className="text-left text-sm">
          <caption className="text-left font-medium">Rejected rows</caption>
          <thead>
            <tr>
              <th scope="col" className="pr-3">Line</th>
              <th scope="col" className="pr-3">Field</th>
              <th scope="col">Reason</th>
            </tr>
          </thead>
          <tbody>
            {job.errors.slice(0, SHOWN_ERRORS).map((row, index) => (
              <tr key={index}>
                <td className="pr-3">{row.line}</td>
                <td className="pr-3">{row.field}</td>
                <td>{row.message}</td>
              </tr>
            ))}
          </tbody>
          {job.errors.length > SHOWN_ERRORS && (
            <tfoot>
              <tr>
                <td colSpan={3}>…and {job.errors.length - SHOWN_ERRORS} more</td>
              </tr>
            </tfoot>
          )}
        </table>
      )}
    </section>
  );
}
