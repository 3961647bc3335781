package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/stanchhq/stanch/runner"
)

// openReadStore opens the store for a command that only reads it (runs
// list, runs show, alerts list): it creates nothing and migrates nothing,
// and a store that is missing or older than this build is an error saying
// what to do.
func openReadStore(ctx context.Context, g *globals, dbURL string) (*runner.Store, func(), error) {
	db, err := openExistingStore(ctx, g, dbURL)
	if err != nil {
		return nil, nil, err
	}
	store := runner.NewStore(db, nil)
	if err := store.CheckSchema(ctx); err != nil {
		db.Close()
		if errors.Is(err, runner.ErrStoreOutdated) {
			return nil, nil, &exitError{code: exitFailed, msg: fmt.Sprintf("%v: run this version's stanch serve (or stanch run) on it once, which brings it up to date, then run this command again", err)}
		}
		return nil, nil, err
	}
	return store, func() { db.Close() }, nil
}

// requireStore refuses a store that does not exist, for the commands that
// change a run (approve, runs retry|cancel|close): there is no run in a
// store that was never made, and making one would hide a mistyped
// --database.
func requireStore(ctx context.Context, g *globals, dbURL string) error {
	db, err := openExistingStore(ctx, g, dbURL)
	if err != nil {
		return err
	}
	return db.Close()
}

func openExistingStore(ctx context.Context, g *globals, dbURL string) (*runner.Database, error) {
	db, err := runner.OpenExistingDatabase(ctx, dbURL)
	switch {
	case errors.Is(err, runner.ErrDatabaseURL):
		return nil, usageError{err}
	case errors.Is(err, runner.ErrNoStore):
		return nil, &exitError{code: exitFailed, msg: fmt.Sprintf("%v%s: nothing has run with this store yet; name the one stanch serve or stanch run used (--database, $STANCH_DATABASE or database: in the configuration file)",
			err, databaseOrigin(g))}
	case err != nil:
		return nil, err
	}
	return db, nil
}

// databaseOrigin says where --database came from, when that was not the
// command line: a store looked for in the wrong place is often named by a
// forgotten variable or configuration file.
func databaseOrigin(g *globals) string {
	switch origin := g.origins["database"]; origin {
	case "":
		return " (the default)"
	case "--database":
		return ""
	default:
		return " (from " + origin + ")"
	}
}
