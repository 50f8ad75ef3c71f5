//! What the loom models share: running a model while counting the executions loom
//! explores, and refusing a model that explored almost none (it would pass vacuously).

use std::cell::Cell;

/// Runs `body` under `loom::model`; how many executions loom explored.
pub fn explore(body: impl Fn() + Sync + Send + 'static) -> usize {
    // loom runs a model's threads on this OS thread, and each test has its own thread.
    std::thread_local!(static EXECUTIONS: Cell<usize> = const { Cell::new(0) });
    EXECUTIONS.with(|n| n.set(0));
    loom::model(move || {
        EXECUTIONS.with(|n| n.set(n.get() + 1));
        body();
    });
    EXECUTIONS.with(Cell::get)
}

/// Prints and checks the number of executions a correct model explored.
pub fn assert_explored(executions: usize) {
    println!("loom explored {executions} executions");
    assert!(
        executions > 10,
        "loom explored only {executions} executions"
    );
}
