import { api } from "../api/client";
import type { ListParams } from "../api/types";

const linkClass =
  "inline-flex min-h-10 items-center rounded-md border border-slate-300 bg-white px-4 py-2 text-sm font-medium text-slate-800 hover:bg-slate-100";

/** Download the list as it is searched and sorted now, as CSV or vCard (streamed by query-api). */
export function ExportLinks({ params }: { params: ListParams }) {
  const what = params.search ? "of the contacts found" : "of all contacts";
  return (
    <div className="flex flex-wrap gap-2">
      <a href={api.exportUrl(params, "csv")} download="contacts.csv" className={linkClass}>
        Export CSV <span className="sr-only">{what}</span>
      </a>
      <a href={api.exportUrl(params, "vcard")} download="contacts.vcf" className={linkClass}>
        Export vCard <span className="sr-only">{what}</span>
      </a>
    </div>
  );
}
