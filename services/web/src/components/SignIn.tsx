import { useEffect, useId, useState } from "react";
import { ApiError } from "../api/client";
import { useSignIn } from "../api/session";
import { Button } from "./Button";
import { FormError, describeError } from "./ContactFields";

/** Seconds left until `until` (a Date.now() time), ticking down to 0. */
function useSecondsLeft(until: number): number {
  const [now, setNow] = useState(Date.now);
  useEffect(() => {
    setNow(Date.now());
    if (until <= Date.now()) return;
    const timer = setInterval(() => {
      setNow(Date.now());
      if (Date.now() >= until) clearInterval(timer);
    }, 250);
    return () => clearInterval(timer);
  }, [until]);
  return Math.max(0, Math.ceil((until - now) / 1000));
}

const inputClass = "rounded-md border border-slate-300 bg-white px-3 py-2 text-base";

/**
 * The sign-in form: the whole page before anyone is signed in, or over the app (which stays where it
 * was, beneath) once the session ended. Wrong credentials and a limit reached say so plainly; while
 * the server asks to wait, the button waits too.
 */
export function SignIn({ sessionEnded = false, lastUsername = "" }: { sessionEnded?: boolean; lastUsername?: string }) {
  const id = useId();
  const signIn = useSignIn();
  const [username, setUsername] = useState(lastUsername);
  const [password, setPassword] = useState("");
  const [waitUntil, setWaitUntil] = useState(0);
  const wait = useSecondsLeft(waitUntil);
  const error = signIn.error;

  const submit = (event: React.FormEvent) => {
    event.preventDefault();
    signIn.mutate(
      { username: username.trim(), password },
      {
        onError: (failure) => {
          if (failure instanceof ApiError && failure.status === 429) {
            setWaitUntil(Date.now() + (failure.retryAfter ?? 1) * 1000);
          }
        },
        onSuccess: () => setPassword(""),
      },
    );
  };

  let message: string | null = null;
  if (error instanceof ApiError && error.status === 401) message = "Wrong username or password.";
  else if (error instanceof ApiError && error.status === 429) {
    message = wait
      ? `Too many attempts. Try again in ${wait} ${wait === 1 ? "second" : "seconds"}.`
      : "Too many attempts. You can try again now.";
  } else if (error) message = describeError(error).message;

  const Box = sessionEnded ? "section" : "main";
  return (
    <div
      className={
        sessionEnded
          ? "fixed inset-0 z-10 flex items-start justify-center overflow-y-auto bg-slate-900/40 p-3 sm:items-center"
          : "flex min-h-dvh items-start justify-center p-3 sm:items-center"
      }
    >
      <Box
        role={sessionEnded ? "dialog" : undefined}
        aria-modal={sessionEnded ? true : undefined}
        aria-labelledby={`${id}-title`}
        className="flex w-full max-w-sm flex-col gap-4 rounded-lg border border-slate-200 bg-white p-5 shadow-sm"
      >
        <h1 id={`${id}-title`} className="text-2xl font-bold">
          {sessionEnded ? "Sign in again" : "Contacts — sign in"}
        </h1>
        {sessionEnded && (
          <p className="text-sm text-slate-700">Your session ended. Sign in to carry on where you were.</p>
        )}
        <form onSubmit={submit} className="flex flex-col gap-3" aria-busy={signIn.isPending}>
          <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
            Username
            <input
              name="username"
              autoComplete="username"
              autoCapitalize="none"
              spellCheck={false}
              required
              autoFocus={!lastUsername}
              value={username}
              onChange={(e) => setUsername(e.target.value)}
              aria-invalid={message ? true : undefined}
              aria-describedby={message ? `${id}-error` : undefined}
              className={inputClass}
            />
          </label>
          <label className="flex flex-col gap-1 text-sm font-medium text-slate-700">
            Password
            <input
              name="password"
              type="password"
              autoComplete="current-password"
              required
              autoFocus={Boolean(lastUsername)}
              value={password}
              onChange={(e) => setPassword(e.target.value)}
              aria-invalid={message ? true : undefined}
              aria-describedby={message ? `${id}-error` : undefined}
              className={inputClass}
            />
          </label>
          <div id={`${id}-error`} data-testid="sign-in-error">
            <FormError message={message} />
          </div>
          <Button type="submit" variant="primary" disabled={signIn.isPending || wait > 0}>
            {signIn.isPending ? "Signing in…" : "Sign in"}
          </Button>
        </form>
      </Box>
    </div>
  );
}
