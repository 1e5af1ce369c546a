import { useState } from "react";
import { App } from "./App";
import { useSession } from "./api/session";
import type { User } from "./api/types";
import { SignIn } from "./components/SignIn";

/**
 * Who is signed in decides what shows: sign-in before anyone is; the app once someone is. When the
 * session ends later (a 401, a revoked live connection, signing out elsewhere), sign-in shows over
 * the app, which keeps its place and resumes once the same person signs in again. Someone else
 * signing in gets a fresh app.
 */
export function Root() {
  const session = useSession();
  const [last, setLast] = useState<User | null>(null);
  const user = session.data ?? null;
  if (user && user !== last) setLast(user);

  if (session.isPending) return <p className="p-6 text-sm text-slate-600">Loading…</p>;
  if (session.error && !last) return <SignIn />;
  const shown = user ?? last;
  return (
    <>
      {shown && <App key={shown.id} user={shown} sessionEnded={!user} />}
      {!user && <SignIn sessionEnded={shown !== null} lastUsername={shown?.username} />}
    </>
  );
}
