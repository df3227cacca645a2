// Runs zkCli (org.apache.zookeeper.ZooKeeperMain from the Apache ZooKeeper
// jars) over a script read from stdin and prints a transcript that can be
// split per command.
//
// Why not pipe the script into ZooKeeperMain directly? Without JLine it reads
// stdin silently: it prints no prompt and does not echo the command, so the
// output cannot be attributed to commands. This driver keeps zkCli's own
// command handling (ZooKeeperMain.executeLine) and only adds:
//   * a header line "zk> <command>" before each command's output,
//   * stderr merged into stdout, so error messages stay in order,
//   * no watcher output for the connection event (it races with commands).
//
// Usage (Java 11+ single-file source launch, no separate compile step):
//   java -cp '<zk lib>/*' ZkCliTranscript.java -server 127.0.0.1:PORT < commands.txt
// Script lines that are blank or start with '#' are skipped.
import java.io.BufferedReader;
import java.io.IOException;
import java.io.InputStreamReader;
import java.nio.charset.StandardCharsets;

import org.apache.zookeeper.ZooKeeperMain;

public class ZkCliTranscript extends ZooKeeperMain {

    public ZkCliTranscript(String[] args) throws IOException, InterruptedException {
        super(args);
    }

    @Override
    protected void connectToZK(String newHost) throws InterruptedException, IOException {
        // Called from ZooKeeperMain's constructor, before the session exists.
        printWatches = false;
        super.connectToZK(newHost);
    }

    public static void main(String[] args) throws IOException, InterruptedException {
        System.setErr(System.out);
        String[] zkArgs = new String[args.length + 1];
        System.arraycopy(args, 0, zkArgs, 0, args.length);
        zkArgs[args.length] = "-waitforconnection";
        ZkCliTranscript cli = new ZkCliTranscript(zkArgs);

        BufferedReader in = new BufferedReader(new InputStreamReader(System.in, StandardCharsets.UTF_8));
        String line;
        while ((line = in.readLine()) != null) {
            String cmd = line.trim();
            if (cmd.isEmpty() || cmd.startsWith("#")) {
                continue;
            }
            System.out.println("zk> " + cmd);
            System.out.flush();
            try {
                // "quit" ends the JVM from inside executeLine.
                cli.executeLine(cmd);
            } catch (Exception e) {
                System.out.println("exception: " + e);
            }
            System.out.flush();
        }
        System.out.println("zk> <end of script without quit>");
        System.exit(0);
    }
}
