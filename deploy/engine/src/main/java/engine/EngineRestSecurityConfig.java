package engine;

import jakarta.servlet.Filter;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;
import org.springframework.boot.web.servlet.FilterRegistrationBean;
import org.springframework.context.annotation.Bean;
import org.springframework.context.annotation.Configuration;

/**
 * HTTP Basic on /engine-rest/*: the engine's own ProcessEngineAuthenticationFilter with its
 * HttpBasicAuthenticationProvider, checked against the engine's identity service.
 * The filter leaves GET /engine-rest/engine open (it lists engines, needs no engine).
 *
 * <p>The three engines ship the same classes under different packages; the one on the
 * class path is found by name, so this source compiles against none of them.
 */
@Configuration(proxyBeanMethods = false)
public class EngineRestSecurityConfig {

    private static final Logger LOG = LoggerFactory.getLogger(EngineRestSecurityConfig.class);

    /** Base packages of Operaton, Camunda 7 and CIB seven. */
    static final String[] ENGINE_PACKAGES = {"org.operaton.bpm", "org.camunda.bpm", "org.cibseven.bpm"};

    static final String FILTER = ".engine.rest.security.auth.ProcessEngineAuthenticationFilter";
    static final String BASIC_PROVIDER = ".engine.rest.security.auth.impl.HttpBasicAuthenticationProvider";

    @Bean
    public FilterRegistrationBean<Filter> engineRestAuthenticationFilter() throws ReflectiveOperationException {
        String base = enginePackage();
        Filter filter = (Filter) Class.forName(base + FILTER).getDeclaredConstructor().newInstance();
        FilterRegistrationBean<Filter> registration = new FilterRegistrationBean<>(filter);
        registration.setName("engine-rest-authentication");
        registration.addUrlPatterns("/engine-rest/*");
        registration.addInitParameter("authentication-provider", base + BASIC_PROVIDER);
        LOG.info("HTTP Basic authentication on /engine-rest/* ({})", base);
        return registration;
    }

    static String enginePackage() {
        ClassLoader loader = EngineRestSecurityConfig.class.getClassLoader();
        for (String base : ENGINE_PACKAGES) {
            try {
                Class.forName(base + FILTER, false, loader);
                return base;
            } catch (ClassNotFoundException e) {
                // not this engine
            }
        }
        throw new IllegalStateException("no engine REST (ProcessEngineAuthenticationFilter) on the class path");
    }
}
