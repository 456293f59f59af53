//! The program of docs/getting-started.md: a parent process hands jobs to a worker process
//! through a queue, closes the queue, waits with `join` until every job is done, and reads the
//! worker's results from a pipe until end-of-file.
//!
//! ```text
//! cargo run -p shmq --example getting_started
//! ```

use std::process::Command;
use std::time::Duration;

use shmq::{End, GetError, Options, Pipe, PipeEnd, Queue, RecvError};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // The program runs twice: as the parent, and (started by the parent) as the worker.
    let args: Vec<String> = std::env::args().collect();
    if let [_, role, name] = &args[..]
        && role == "worker"
    {
        return worker(name);
    }

    // A unique name: segments live in /dev/shm, shared by every program on the machine.
    let name = format!("getting-started-{}", std::process::id());
    let opts = Options {
        capacity: 8,
        message_size: 256,
        ..Default::default()
    };
    let jobs = Queue::create(&format!("{name}-jobs"), &opts)?;
    let (results, worker_end) = Pipe::create(&format!("{name}-results"), &opts)?;
    // End B is the worker's: keep it open until the worker has opened it, then let go.
    worker_end.hand_off(Duration::from_secs(10))?;
    let mut child = Command::new(std::env::current_exe()?)
        .args(["worker", &name])
        .spawn()?;
    worker_end.close()?;

    for photo in ["cat.jpg", "dog.jpg", "owl.jpg"] {
        jobs.put(format!("resize {photo}"))?; // waits while the queue is full
    }
    jobs.close()?; // no more jobs: the worker's get returns Closed once it has taken them all
    jobs.join_timeout(Duration::from_secs(10))?; // every job taken and marked done
    println!("parent: all 3 jobs done");

    loop {
        match results.recv() {
            Ok(line) => println!("parent: {}", String::from_utf8_lossy(&line)),
            Err(RecvError::Disconnected) => break, // the worker closed its end: end-of-file
            Err(e) => return Err(e.into()),
        }
    }
    assert!(child.wait()?.success());

    Queue::unlink(&format!("{name}-jobs"))?; // names stay in /dev/shm until removed
    Pipe::unlink(&format!("{name}-results"))?;
    Ok(())
}

fn worker(name: &str) -> Result<(), Box<dyn std::error::Error>> {
    let jobs = Queue::open(&format!("{name}-jobs"))?;
    let results = PipeEnd::open(&format!("{name}-results"), End::B)?;
    loop {
        match jobs.get() {
            Ok(job) => {
                let job = String::from_utf8(job)?;
                results.send(format!("worker {}: {job}: done", std::process::id()))?;
                jobs.task_done()?; // JoinableQueue: this job is finished
            }
            Err(GetError::Closed) => break, // closed and drained: no sentinel needed
            Err(e) => return Err(e.into()),
        }
    }
    results.close()?; // or just return: a process that exits or dies closes its ends
    Ok(())
}
