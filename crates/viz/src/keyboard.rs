//! Turns Ctrl-C and typed lines (`m` mute, `q` quit) into call commands. A second
//! Ctrl-C while leaving exits at once.

use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use viz_client::join::UserCommand;

pub fn spawn() -> mpsc::Receiver<UserCommand> {
    let (tx, rx) = mpsc::channel(16);
    let ctrl_c = tx.clone();
    tokio::spawn(async move {
        let mut presses = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            presses += 1;
            if presses > 1 {
                eprintln!("Interrupted again: exiting without waiting.");
                std::process::exit(130);
            }
            let _ = ctrl_c.send(UserCommand::Leave).await;
        }
    });
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
        // EOF (stdin is /dev/null, or closed) just ends this task.
        while let Ok(Some(line)) = lines.next_line().await {
            let cmd = match line.trim() {
                "m" | "M" | "mute" => UserCommand::ToggleMute,
                "q" | "Q" | "quit" | "exit" => UserCommand::Leave,
                "" => continue,
                other => {
                    println!("Unknown command '{other}': m = mute/unmute, q = leave");
                    continue;
                }
            };
            if tx.send(cmd).await.is_err() {
                return;
            }
        }
    });
    rx
}
