package engine;

import java.io.IOException;
import java.io.UncheckedIOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.Map;

import org.springframework.boot.SpringApplication;
import org.springframework.boot.autoconfigure.SpringBootApplication;
import org.springframework.boot.context.event.ApplicationEnvironmentPreparedEvent;
import org.springframework.context.ApplicationEvent;
import org.springframework.core.env.ConfigurableEnvironment;
import org.springframework.core.env.MapPropertySource;

/**
 * The process engine (Operaton, Camunda 7 CE or CIB seven, whichever starter the Maven
 * profile put on the class path) with its REST API on /engine-rest, on an H2 file database.
 *
 * <p>Run-time settings (see application.yml): {@code --server.port}, {@code --server.address},
 * {@code --engine.data-dir} (env ENGINE_DATA_DIR), {@code --engine.admin.user} and
 * {@code --engine.admin.password} (env ENGINE_ADMIN_USER, ENGINE_ADMIN_PASSWORD).
 */
@SpringBootApplication
public class EngineApplication {

    public static void main(String[] args) {
        SpringApplication app = new SpringApplication(EngineApplication.class);
        app.addListeners((ApplicationEvent event) -> {
            if (event instanceof ApplicationEnvironmentPreparedEvent prepared) {
                resolveDataDir(prepared.getEnvironment());
            }
        });
        app.run(args);
    }

    /**
     * Turns engine.data-dir (relative or absolute) into the absolute, existing directory
     * engine.data-path, which the JDBC URL uses: H2 refuses implicitly relative file paths.
     */
    static void resolveDataDir(ConfigurableEnvironment env) {
        Path dir = Path.of(env.getProperty("engine.data-dir", "./data")).toAbsolutePath().normalize();
        try {
            Files.createDirectories(dir);
        } catch (IOException e) {
            throw new UncheckedIOException("cannot create engine.data-dir " + dir, e);
        }
        env.getPropertySources().addFirst(
                new MapPropertySource("engineDataPath", Map.of("engine.data-path", dir.toString())));
    }
}
