package engine;

import org.springframework.boot.web.embedded.tomcat.TomcatServletWebServerFactory;
import org.springframework.boot.web.server.WebServerFactoryCustomizer;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * Lets a variable name contain "/" (sent as %2F): Tomcat rejects %2F in paths by default;
 * "passthrough" keeps it encoded, so Jersey decodes it once, inside the path parameter.
 */
@Configuration(proxyBeanMethods = false)
public class EncodedSlashConfig {

    @Bean
    public WebServerFactoryCustomizer<TomcatServletWebServerFactory> encodedSlashPassthrough() {
        return factory -> factory.addConnectorCustomizers(
                connector -> connector.setEncodedSolidusHandling("passthrough"));
    }
}
